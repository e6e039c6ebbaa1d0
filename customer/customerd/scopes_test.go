package customerd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestServiceTokensWithoutScopeSetting: SERVICE_TOKENS_WITHOUT_SCOPE is
// allow in development, deny elsewhere, and nothing but those two.
func TestServiceTokensWithoutScopeSetting(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("k", config.MinSigningKey)
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, customerd.UnscopedAllow},
		{map[string]string{"DEPLOYMENT_ENVIRONMENT": "production"}, customerd.UnscopedDeny},
		{map[string]string{"DEPLOYMENT_ENVIRONMENT": "staging"}, customerd.UnscopedDeny},
		{map[string]string{"DEPLOYMENT_ENVIRONMENT": "production", "SERVICE_TOKENS_WITHOUT_SCOPE": "allow"}, customerd.UnscopedAllow},
		{map[string]string{"SERVICE_TOKENS_WITHOUT_SCOPE": "deny"}, customerd.UnscopedDeny},
	} {
		tc.env["JWT_SIGNING_KEY"] = key
		cfg, err := customerd.LoadConfig(config.FromMap(tc.env))
		if err != nil || cfg.ServiceTokensWithoutScope != tc.want {
			t.Errorf("%v: %q %v, want %q", tc.env, cfg.ServiceTokensWithoutScope, err, tc.want)
		}
	}
	if _, err := customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": key, "SERVICE_TOKENS_WITHOUT_SCOPE": "yes"})); err == nil || !strings.Contains(err.Error(), "SERVICE_TOKENS_WITHOUT_SCOPE") {
		t.Fatalf("a bad value: %v", err)
	}
}

// serviceToken mints a service token; scope nil: no scope claim.
func serviceToken(t *testing.T, scope *string) string {
	t.Helper()
	c := jwt.MapClaims{
		"token_type": "access", "exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(),
		"jti": contract.NewID(), "user_id": "bff", "user_role": contract.RoleService,
	}
	if scope != nil {
		c["scope"] = *scope
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(signingKey))
	testenv.Must(t, err, "sign")
	return s
}

// TestRunEnforcesScopesAndPublicURL: the running service holds service
// tokens to their scopes, treats unscoped ones as SERVICE_TOKENS_WITHOUT_SCOPE
// says, and builds its pagination links on PUBLIC_URL.
func TestRunEnforcesScopesAndPublicURL(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{customerd.UnscopedDeny, customerd.UnscopedAllow} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			auth := newFakeAuth(t)
			_, svc := start(t, systest.Options{Env: map[string]string{
				"AUTH_URL": auth.srv.URL, "SERVICE_TOKENS_WITHOUT_SCOPE": policy, "PUBLIC_URL": "https://customers.example.com",
			}})
			base := svc.URL + "/api/v1/customers/"
			var id string
			for range 2 {
				code, body, _ := call(t, "POST", base+"profile/create/", token(t, contract.NewID(), "customer"),
					map[string]any{"street_address": "1 Main St", "city": "Springfield", "postal_code": "62701"})
				if code != 201 {
					t.Fatalf("create: %d %v", code, body)
				}
				id = body["id"].(string)
			}
			read, none := "customers:read", ""
			reader, unscoped, empty := serviceToken(t, &read), serviceToken(t, nil), serviceToken(t, &none)

			code, body, _ := call(t, "GET", base+"?page_size=1", reader, nil)
			if code != 200 || body["next"] != "https://customers.example.com/api/v1/customers/?page=2&page_size=1" {
				t.Fatalf("list with customers:read: %d %v", code, body)
			}
			if code, body, _ := call(t, "POST", base+id+"/increment_service/", reader, nil); code != 403 || body["code"] != "permission_denied" {
				t.Fatalf("increment with customers:read only: %d %v", code, body)
			}
			if code, _, _ := call(t, "DELETE", base+id+"/", empty, nil); code != 403 {
				t.Fatalf("delete with an empty scope: %d", code)
			}
			want := map[string]int{customerd.UnscopedDeny: 403, customerd.UnscopedAllow: 200}[policy]
			if code, body, _ := call(t, "GET", base+id+"/", unscoped, nil); code != want {
				t.Fatalf("an unscoped service token under %s: %d %v, want %d", policy, code, body, want)
			}
		})
	}
}
