package embedded

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The first run generates every secret and keeps them; later runs read
// the same ones.
func TestDevSecretsGeneratedOnceAndKept(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := LoadDevSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"jwt": s.JWTSigningKey, "admin": s.AdminPassword, "bff": s.BFFClientSecret,
		"migrate": s.MigrateClientSecret, "customer": s.CustomerClientSecret} {
		if v == "" {
			t.Errorf("%s secret not generated", name)
		}
	}
	if s.CustomerClientSecret == s.BFFClientSecret || s.CustomerClientSecret == s.MigrateClientSecret {
		t.Error("the customer client shares a secret with another client")
	}
	fi, err := os.Stat(filepath.Join(dir, DevSecretsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := LoadDevSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again != s {
		t.Errorf("second run read %+v, want %+v", again, s)
	}
}

// A dev-secrets.json written before the customer service had an account
// keeps its secrets (tokens, the admin's password and the other clients
// stay valid) and gains a customer client secret, which is then kept.
func TestDevSecretsFileWithoutCustomerSecretGainsOne(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := map[string]string{"jwt_signing_key": "old-key", "admin_password": "Adm1n-old",
		"bff_client_secret": "old-bff", "migrate_client_secret": "old-migrate"}
	b, _ := json.Marshal(old)
	p := filepath.Join(dir, DevSecretsFile)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadDevSecrets(dir)
	if err != nil {
		t.Fatalf("an existing file without the customer secret: %v", err)
	}
	want := DevSecrets{JWTSigningKey: "old-key", AdminPassword: "Adm1n-old", BFFClientSecret: "old-bff",
		MigrateClientSecret: "old-migrate", CustomerClientSecret: s.CustomerClientSecret}
	if s != want {
		t.Errorf("got %+v, want the old secrets kept: %+v", s, want)
	}
	if s.CustomerClientSecret == "" {
		t.Fatal("no customer client secret added")
	}
	var stored DevSecrets
	b, err = os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	if stored != s {
		t.Errorf("file holds %+v, want %+v", stored, s)
	}
	again, err := LoadDevSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again != s {
		t.Errorf("next run read %+v, want the added secret kept: %+v", again, s)
	}
}
