package stack

import (
	"slices"
	"testing"
)

func TestServices(t *testing.T) {
	t.Parallel()
	if got := Names(); !slices.Equal(got, []string{"auth", "customer", "bff"}) {
		t.Fatalf("services %v, want auth, customer, bff: each one's callees first", got)
	}
	for _, s := range Services() {
		if s.Run == nil || s.DBVar == "" || s.Cmd == "" {
			t.Errorf("%s lacks its Run, database variable or command: %+v", s.Name, s)
		}
		if got, ok := Lookup(s.Name); !ok || got.Name != s.Name {
			t.Errorf("Lookup(%q) = %v, %v", s.Name, got.Name, ok)
		}
	}
	if _, ok := Lookup("billing"); ok {
		t.Error("Lookup found a service that does not exist")
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	w := Wiring{MongoURI: "mongodb://m/", URLs: map[string]string{"auth": "http://a:1/", "customer": "http://c:2"},
		SigningKey: "key", BFFClientSecret: "bs", MigrateClientSecret: "ms", CustomerClientSecret: "cs"}
	env := Env(w)
	want := map[string]string{
		"MONGODB_URI": "mongodb://m/", "JWT_SIGNING_KEY": "key", "AUTH_URL": "http://a:1", "CUSTOMER_URL": "http://c:2",
		"AUTH_SERVICE_CLIENTS": "bff:bs,migrate:ms,customer:cs", "BFF_SERVICE_CLIENT_ID": "bff", "BFF_SERVICE_CLIENT_SECRET": "bs",
		"CUSTOMER_SERVICE_CLIENT_ID": "customer", "CUSTOMER_SERVICE_CLIENT_SECRET": "cs",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"REDIS_URL", "AUTH_BOOTSTRAP_ADMIN_EMAIL", "AUTH_BOOTSTRAP_ADMIN_PASSWORD"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s set without a Redis or an admin", k)
		}
	}
	w.RedisURL, w.AdminEmail, w.AdminPassword = "redis://r/0", "admin@example.com", "pw"
	env = Env(w)
	if env["REDIS_URL"] != "redis://r/0" || env["AUTH_BOOTSTRAP_ADMIN_EMAIL"] != "admin@example.com" || env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"] != "pw" {
		t.Errorf("Redis and admin: %v", env)
	}
}
