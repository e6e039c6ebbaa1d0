package authd_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	if _, err := authd.LoadConfig(config.FromMap(nil)); err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") {
		t.Fatalf("no signing key: err = %v, want one naming JWT_SIGNING_KEY", err)
	}
	c, err := authd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8001" || c.MetricsAddr != ":9101" || c.DB != "auth" || c.AccessTTL != 5*time.Minute ||
		c.RefreshTTL != 24*time.Hour || c.ServiceTokenTTL != 5*time.Minute || c.Argon2.MemoryKiB != 19456 ||
		c.Argon2.Iterations != 2 || c.Argon2.Parallelism != 1 || c.ShutdownTimeout != 15*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	bad := map[string]string{
		"JWT_SIGNING_KEY":            "k",
		"AUTH_RATE_LIMITS":           "login=ten/1m",
		"AUTH_SERVICE_CLIENTS":       "bff",
		"ARGON2_ITERATIONS":          "0",
		"AUTH_BOOTSTRAP_ADMIN_EMAIL": "a@example.com",
	}
	_, err = authd.LoadConfig(config.FromMap(bad))
	for _, k := range []string{"AUTH_RATE_LIMITS", "AUTH_SERVICE_CLIENTS", "ARGON2_ITERATIONS", "AUTH_BOOTSTRAP_ADMIN_EMAIL"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("bad config: err = %v, want it to name %s", err, k)
		}
	}
	if strings.Contains(err.Error(), "k\"") {
		t.Errorf("error leaks the signing key: %v", err)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"REDIS_URL": "redis://:redis-password@127.0.0.1:1/0"})
	out := s.logs.String()
	for _, secret := range []string{systest.SigningKey, systest.BFFClientSecret, systest.MigrateClientSecret, systest.CustomerClientSecret, "redis-password"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the start log leaks a secret: %s", out)
		}
	}
	if !strings.Contains(out, `"jwt_signing_keys":{"current":"*****"`) || !strings.Contains(out, `"auth_db":"`+s.cfg.DB+`"`) {
		t.Fatalf("the start log lacks the configuration: %s", out)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if a := s.get(p, ""); a.Status != http.StatusOK {
			t.Errorf("%s: %d %s", p, a.Status, a.Body)
		}
	}
	resp, err := http.Get(s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("metrics: %d", resp.StatusCode)
	}
}

func TestRegisterLoginProfile(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	reg := s.register("  Alice.Smith@Example.COM ", "Alice", "Smith")
	b := reg.body
	if b["email"] != "alice.smith@example.com" || b["first_name"] != "Alice" || b["last_name"] != "Smith" ||
		b["phone_number"] != "+1 555-0100" || b["user_role"] != "customer" {
		t.Fatalf("register body: %v", b)
	}
	if _, err := time.Parse(time.RFC3339, b["date_joined"].(string)); err != nil || !strings.HasSuffix(b["date_joined"].(string), "Z") {
		t.Fatalf("date_joined %v is not RFC 3339 UTC", b["date_joined"])
	}
	for _, k := range []string{"password", "password1", "password_hash"} {
		if _, ok := b[k]; ok {
			t.Fatalf("register answer leaks %q", k)
		}
	}
	c, err := s.verifier.Verify(reg.access)
	if err != nil {
		t.Fatalf("access token refused by the verifier: %v", err)
	}
	if c.UserID != reg.id || c.Email != "alice.smith@example.com" || c.Role != "customer" || c.FirstName != "Alice" ||
		len(c.JTI) != 32 || c.ExpiresAt.Sub(c.IssuedAt) != 5*time.Minute {
		t.Fatalf("claims: %+v", c)
	}
	if _, err := s.verifier.Verify(reg.refresh); err == nil {
		t.Fatal("a refresh token was accepted as an access token")
	}

	// Login: case-insensitive email, same user; wrong password and unknown email look the same.
	a := s.login("ALICE.smith@example.com", goodPassword)
	if a.Status != http.StatusOK {
		t.Fatalf("login: %d %s", a.Status, a.Body)
	}
	if got := toSession(t, a); got.id != reg.id {
		t.Fatalf("login id %s, want %s", got.id, reg.id)
	}
	wrong := s.login("alice.smith@example.com", goodPassword+"x")
	unknown := s.login("nobody@example.com", goodPassword)
	for _, a := range []answer{wrong, unknown} {
		wantDetail(t, a, http.StatusUnauthorized, "no_active_account", "No active account found with the given credentials")
	}
	if string(wrong.Body) != string(unknown.Body) {
		t.Fatalf("wrong password and unknown email answer differently: %s vs %s", wrong.Body, unknown.Body)
	}
	if f := s.login("", "").fields(t); f["email"] == nil || f["password"] == nil {
		t.Fatalf("empty login: %v", f)
	}

	// Profile and update.
	p := s.get("/api/auth/profile/", reg.access)
	if p.Status != http.StatusOK || p.Map(t)["id"] != reg.id {
		t.Fatalf("profile: %d %s", p.Status, p.Body)
	}
	if _, ok := p.Map(t)["tokens"]; ok {
		t.Fatal("profile carries tokens")
	}
	upd := s.do(req{method: http.MethodPatch, path: "/api/auth/profile/update/", token: reg.access,
		body: map[string]any{"first_name": "Alicia", "email": "ALICIA@example.com", "phone_number": "(555) 010-0200"}})
	if upd.Status != http.StatusOK {
		t.Fatalf("update: %d %s", upd.Status, upd.Body)
	}
	if m := upd.Map(t); m["first_name"] != "Alicia" || m["email"] != "alicia@example.com" || m["last_name"] != "Smith" || m["phone_number"] != "(555) 010-0200" {
		t.Fatalf("update body: %v", m)
	}
	if a := s.login("alicia@example.com", goodPassword); a.Status != http.StatusOK {
		t.Fatalf("login with the new email: %d %s", a.Status, a.Body)
	}

	// Bad updates change nothing.
	other := s.register("bob@example.com", "Bob", "Jones")
	for name, tc := range map[string]struct {
		body  any
		field string
		msg   string
	}{
		"taken email":      {map[string]any{"email": "BOB@example.com"}, "email", "user with this email already exists."},
		"invalid email":    {map[string]any{"email": "not-an-email", "first_name": "X"}, "email", "Enter a valid email address."},
		"blank first name": {map[string]any{"first_name": "  "}, "first_name", "This field may not be blank."},
		"role":             {map[string]any{"user_role": "admin"}, "user_role", "This field is read-only."},
		"unknown":          {map[string]any{"nickname": "x"}, "nickname", "Unknown field."},
		"wrong type":       {map[string]any{"last_name": 12}, "last_name", "Not a valid string."},
		"too long":         {map[string]any{"last_name": strings.Repeat("x", 151)}, "last_name", "Ensure this field has no more than 150 characters."},
		"bad phone":        {map[string]any{"phone_number": "call me"}, "phone_number", "Enter a valid phone number."},
	} {
		a := s.do(req{method: http.MethodPatch, path: "/api/auth/profile/update/", token: reg.access, body: tc.body})
		if f := a.fields(t); len(f[tc.field]) != 1 || f[tc.field][0] != tc.msg {
			t.Errorf("%s: fields %v, want %s: %q", name, f, tc.field, tc.msg)
		}
	}
	if m := s.get("/api/auth/profile/", reg.access).Map(t); m["first_name"] != "Alicia" || m["email"] != "alicia@example.com" || m["last_name"] != "Smith" {
		t.Fatalf("a refused update changed the user: %v", m)
	}

	// Self-delete: the account is gone, other users are not.
	a = s.do(req{method: http.MethodDelete, path: "/api/auth/profile/delete/", token: reg.access})
	if a.Status != http.StatusNoContent || len(a.Body) != 0 {
		t.Fatalf("delete: %d %q", a.Status, a.Body)
	}
	wantDetail(t, s.get("/api/auth/profile/", reg.access), http.StatusUnauthorized, "user_not_found", "")
	wantDetail(t, s.login("alicia@example.com", goodPassword), http.StatusUnauthorized, "no_active_account", "")
	wantDetail(t, s.refresh(reg.refresh), http.StatusUnauthorized, "user_not_found", "")
	if a := s.get("/api/auth/profile/", other.access); a.Status != http.StatusOK {
		t.Fatalf("other user after a delete: %d", a.Status)
	}
}

func TestAuthenticationErrors(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	u := s.register("carol@example.com", "Carol", "King")
	svc := s.serviceToken()
	endpoints := []req{
		{method: http.MethodGet, path: "/api/auth/profile/"},
		{method: http.MethodPatch, path: "/api/auth/profile/update/", body: map[string]any{"first_name": "X"}},
		{method: http.MethodDelete, path: "/api/auth/profile/delete/"},
		{method: http.MethodPost, path: "/api/auth/logout/", body: map[string]any{"refresh": u.refresh}},
	}
	for _, e := range endpoints {
		a := s.do(e)
		wantDetail(t, a, http.StatusUnauthorized, "not_authenticated", "Authentication credentials were not provided.")
		e.token = "garbage.token.value"
		wantDetail(t, s.do(e), http.StatusUnauthorized, "token_not_valid", "Given token not valid for any token type")
		e.token = u.refresh
		wantDetail(t, s.do(e), http.StatusUnauthorized, "token_not_valid", "Given token not valid for any token type")
		e.token = svc
		wantDetail(t, s.do(e), http.StatusForbidden, "permission_denied", "")
	}
	// The service token changed nothing.
	if m := s.get("/api/auth/profile/", u.access).Map(t); m["first_name"] != "Carol" {
		t.Fatalf("profile after refused calls: %v", m)
	}
	if a := s.refresh(u.refresh); a.Status != http.StatusOK {
		t.Fatalf("the refresh token stopped working after a refused logout: %d %s", a.Status, a.Body)
	}
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	long := strings.Repeat("a", 4097)
	cases := []struct {
		name  string
		body  any
		field string
		msgs  []string
	}{
		{"missing email", map[string]any{"first_name": "A", "last_name": "B", "password1": goodPassword, "password2": goodPassword}, "email", []string{"This field is required."}},
		{"blank first name", func() any { b := regBody("v1@example.com", "", "B", goodPassword); return b }(), "first_name", []string{"This field may not be blank."}},
		{"invalid email", regBody("v2@@example", "A", "B", goodPassword), "email", []string{"Enter a valid email address."}},
		{"email wrong type", func() any { b := regBody("", "A", "B", goodPassword); b["email"] = 42; return b }(), "email", []string{"Not a valid string."}},
		{"email null", func() any { b := regBody("", "A", "B", goodPassword); b["email"] = nil; return b }(), "email", []string{"This field may not be null."}},
		{"mismatch", func() any {
			b := regBody("v3@example.com", "A", "B", goodPassword)
			b["password2"] = goodPassword + "!"
			return b
		}(), "password2", []string{"The two password fields didn’t match."}},
		{"short", regBody("v4@example.com", "Ann", "Bee", "xK9$q"), "password1", []string{"This password is too short. It must contain at least 8 characters."}},
		{"common", regBody("v5@example.com", "Ann", "Bee", "password1"), "password1", []string{"This password is too common."}},
		{"numeric and common", regBody("v6@example.com", "Ann", "Bee", "12345678"), "password1", []string{"This password is too common.", "This password is entirely numeric."}},
		{"numeric", regBody("v7@example.com", "Ann", "Bee", "90871634522"), "password1", []string{"This password is entirely numeric."}},
		{"similar to email", regBody("quintessential@example.com", "Ann", "Bee", "Quintessential1"), "password1", []string{"The password is too similar to the email."}},
		{"similar to first name", regBody("v8@example.com", "Maximilian", "Bee", "maximilian!"), "password1", []string{"The password is too similar to the first name."}},
		{"similar to last name", regBody("v9@example.com", "Ann", "Featherstonehaugh", "Featherstonehaugh7"), "password1", []string{"The password is too similar to the last name."}},
		{"too long", regBody("v10@example.com", "Ann", "Bee", long), "password1", []string{"Ensure this field has no more than 4096 characters."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := s.post("/api/auth/register/", "", tc.body)
			f := a.fields(t)
			if strings.Join(f[tc.field], "|") != strings.Join(tc.msgs, "|") {
				t.Fatalf("fields %v, want %s: %q", f, tc.field, tc.msgs)
			}
		})
	}
	// A 4096-byte password is fine.
	ok := regBody("long-ok@example.com", "Ann", "Bee", strings.Repeat("Zq8!", 1024))
	if a := s.post("/api/auth/register/", "", ok); a.Status != http.StatusCreated {
		t.Fatalf("4096-byte password: %d %s", a.Status, a.Body)
	}
	// All errors at once.
	f := s.post("/api/auth/register/", "", map[string]any{"email": "x", "password1": "1", "password2": "2"}).fields(t)
	for _, k := range []string{"email", "first_name", "last_name", "password1", "password2"} {
		if len(f[k]) == 0 {
			t.Errorf("all-at-once: no error for %s in %v", k, f)
		}
	}
	// Bodies.
	wantDetail(t, s.post("/api/auth/register/", "", "{not json"), http.StatusBadRequest, "invalid", "")
	wantDetail(t, s.post("/api/auth/register/", "", `["a"]`), http.StatusBadRequest, "invalid", "")
	wantDetail(t, s.post("/api/auth/register/", "", `{"email": "a@example.com"} {}`), http.StatusBadRequest, "invalid", "")
	a := s.do(req{method: http.MethodPost, path: "/api/auth/register/", body: "email=a", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	wantDetail(t, a, http.StatusUnsupportedMediaType, "unsupported_media_type", "")
	huge := `{"email": "` + strings.Repeat("a", 1<<20) + `@example.com"}`
	wantDetail(t, s.post("/api/auth/register/", "", huge), http.StatusRequestEntityTooLarge, "request_too_large", "")
	// Nothing was created by any refused registration.
	for _, e := range []string{"v1@example.com", "v3@example.com", "v4@example.com", "v5@example.com", "quintessential@example.com", "v10@example.com", "x"} {
		if n := s.countByEmail(e); n != 0 {
			t.Errorf("%s: %d users after a refused registration", e, n)
		}
	}
}

func TestDuplicateEmail(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	s.register("dave@example.com", "Dave", "Grohl")
	for _, e := range []string{"dave@example.com", "DAVE@Example.com", "  dave@example.com  "} {
		f := s.post("/api/auth/register/", "", regBody(e, "Dave", "Other", goodPassword)).fields(t)
		if len(f) != 1 || len(f["email"]) != 1 || f["email"][0] != "user with this email already exists." {
			t.Fatalf("%q: %v", e, f)
		}
	}
	// Concurrent registrations of one new email, in varying case: exactly one wins.
	const n = 12
	var wg sync.WaitGroup
	statuses := make([]answer, n)
	for i := range n {
		wg.Go(func() {
			email := "erin@example.com"
			if i%2 == 1 {
				email = "Erin@Example.com"
			}
			statuses[i] = s.post("/api/auth/register/", "", regBody(email, "Erin", "Brockovich", goodPassword))
		})
	}
	wg.Wait()
	created := 0
	for _, a := range statuses {
		switch a.Status {
		case http.StatusCreated:
			created++
		case http.StatusBadRequest:
			if f := a.fields(t); len(f["email"]) != 1 || f["email"][0] != "user with this email already exists." {
				t.Fatalf("loser's answer: %s", a.Body)
			}
		default:
			t.Fatalf("concurrent register: %d %s", a.Status, a.Body)
		}
	}
	if created != 1 || s.countByEmail("erin@example.com") != 1 {
		t.Fatalf("%d registrations succeeded, %d users stored; want 1 and 1", created, s.countByEmail("erin@example.com"))
	}
}

func TestRefreshRotationAndLogout(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	u := s.register("frank@example.com", "Frank", "Ocean")

	a := s.refresh(u.refresh)
	if a.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", a.Status, a.Body)
	}
	m := a.Map(t)
	access, _ := m["access"].(string)
	refresh, _ := m["refresh"].(string)
	if access == "" || refresh == "" || refresh == u.refresh {
		t.Fatalf("refresh answer: %s", a.Body)
	}
	if c, err := s.verifier.Verify(access); err != nil || c.UserID != u.id {
		t.Fatalf("refreshed access token: %v %+v", err, c)
	}
	// The used refresh token is blacklisted.
	wantDetail(t, s.refresh(u.refresh), http.StatusUnauthorized, "token_not_valid", "Token is blacklisted")
	// Other bad refresh tokens.
	wantDetail(t, s.refresh(access), http.StatusUnauthorized, "token_not_valid", "Token is invalid or expired")
	wantDetail(t, s.post("/api/auth/token/refresh/", "", map[string]any{"refresh": "a.b.c"}), http.StatusUnauthorized, "token_not_valid", "Token is invalid or expired")
	if f := s.post("/api/auth/token/refresh/", "", map[string]any{}).fields(t); f["refresh"][0] != "This field is required." {
		t.Fatalf("missing refresh: %v", f)
	}

	// Concurrent use of one refresh token: exactly one succeeds. (A new
	// session: the replay above revoked the first one's family.)
	refresh = toSession(t, s.login(u.email, goodPassword)).refresh
	const n = 8
	var wg sync.WaitGroup
	results := make([]int, n)
	for i := range n {
		wg.Go(func() { results[i] = s.refresh(refresh).Status })
	}
	wg.Wait()
	ok := 0
	for _, st := range results {
		if st == http.StatusOK {
			ok++
		} else if st != http.StatusUnauthorized {
			t.Fatalf("concurrent refresh status %d", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent refreshes of one token succeeded, want 1", ok)
	}

	// Logout.
	l := toSession(t, s.login("frank@example.com", goodPassword))
	other := s.register("grace@example.com", "Grace", "Hopper")
	if f := s.post("/api/auth/logout/", l.access, map[string]any{"refresh": other.refresh}).fields(t); f["refresh"][0] != "Token is invalid or expired" {
		t.Fatalf("logout with someone else's refresh token: %v", f)
	}
	if f := s.post("/api/auth/logout/", l.access, map[string]any{}).fields(t); f["refresh"][0] != "This field is required." {
		t.Fatalf("logout without refresh: %v", f)
	}
	a = s.post("/api/auth/logout/", l.access, map[string]any{"refresh": l.refresh})
	if a.Status != http.StatusResetContent || len(a.Body) != 0 {
		t.Fatalf("logout: %d %q", a.Status, a.Body)
	}
	wantDetail(t, s.refresh(l.refresh), http.StatusUnauthorized, "token_not_valid", "Token is blacklisted")
	if a := s.post("/api/auth/logout/", l.access, map[string]any{"refresh": l.refresh}); a.Status != http.StatusResetContent {
		t.Fatalf("second logout: %d %s", a.Status, a.Body)
	}
	// The other user's token still works.
	if a := s.refresh(other.refresh); a.Status != http.StatusOK {
		t.Fatalf("unrelated refresh after a logout: %d %s", a.Status, a.Body)
	}
}

// TestWeakSigningKeyRefused: outside development a JWT_SIGNING_KEY shorter
// than 32 bytes (RFC 7518 §3.2) stops the service at start, naming the
// variable and not quoting the key; in development it is allowed.
func TestWeakSigningKeyRefused(t *testing.T) {
	t.Parallel()
	weak := "s3cr3t" // 6 bytes
	_, err := authd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": weak, "DEPLOYMENT_ENVIRONMENT": "production"}))
	if err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") || !strings.Contains(err.Error(), "32") {
		t.Fatalf("6-byte key in production: err = %v, want one naming JWT_SIGNING_KEY and 32 bytes", err)
	}
	if strings.Contains(err.Error(), weak) {
		t.Fatalf("the error quotes the key: %v", err)
	}
	if _, err := authd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": strings.Repeat("k", 32), "DEPLOYMENT_ENVIRONMENT": "production"})); err != nil {
		t.Fatalf("32-byte key in production: %v", err)
	}
	if _, err := authd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": weak})); err != nil {
		t.Fatalf("6-byte key in development: %v", err)
	}
}
