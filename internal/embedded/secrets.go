package embedded

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DevSecrets are the development-only secrets `make run` needs: generated
// randomly on the first run and kept in the data directory (never committed),
// so a restart keeps tokens, the admin's password and service clients valid.
type DevSecrets struct {
	JWTSigningKey       string `json:"jwt_signing_key"`
	AdminPassword       string `json:"admin_password"`
	BFFClientSecret     string `json:"bff_client_secret"`
	MigrateClientSecret string `json:"migrate_client_secret"`
	// CustomerClientSecret is the customer service's service-client secret
	// (its erasure cascade); a file written before it existed gains one.
	CustomerClientSecret string `json:"customer_client_secret"`
}

// DevSecretsFile is the file name under the data directory.
const DevSecretsFile = "dev-secrets.json"

// LoadDevSecrets reads dir/dev-secrets.json, creating it with fresh random
// secrets (mode 0600) when it does not exist. A file that lacks the
// customer client's secret (written before the customer service had an
// account) keeps its other secrets and gains that one.
func LoadDevSecrets(dir string) (DevSecrets, error) {
	p := filepath.Join(dir, DevSecretsFile)
	b, err := os.ReadFile(p)
	if err == nil {
		var s DevSecrets
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("dev secrets %s: %w (delete the file to regenerate)", p, err)
		}
		if s.JWTSigningKey != "" {
			if s.CustomerClientSecret != "" {
				return s, nil
			}
			s.CustomerClientSecret = random(24)
			return s, writeDevSecrets(dir, p, s)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return DevSecrets{}, fmt.Errorf("dev secrets: %w", err)
	}
	s := DevSecrets{
		JWTSigningKey:        random(32),
		AdminPassword:        "Adm1n-" + random(9),
		BFFClientSecret:      random(24),
		MigrateClientSecret:  random(24),
		CustomerClientSecret: random(24),
	}
	return s, writeDevSecrets(dir, p, s)
}

func writeDevSecrets(dir, p string, s DevSecrets) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("dev secrets: %w", err)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return fmt.Errorf("dev secrets: %w", err)
	}
	return nil
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
