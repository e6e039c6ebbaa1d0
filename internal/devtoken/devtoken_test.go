package devtoken

import (
	"testing"

	"github.com/acme/customer-platform/authclient"
)

func TestSignedTokenVerifies(t *testing.T) {
	t.Parallel()
	key := []byte("k-for-test")
	v, err := authclient.NewVerifier(authclient.VerifierConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	tok, c, err := Sign(key, Options{Role: "employee"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got.UserID != c.UserID || got.Role != "employee" || got.Email != c.Email {
		t.Errorf("claims = %+v, want %+v", got, c)
	}
	if _, _, err := Sign(key, Options{Role: "root"}); err == nil {
		t.Error("unknown role accepted")
	}
	if _, _, err := Sign(key, Options{UserID: "42"}); err == nil {
		t.Error("non-UUID user id accepted")
	}
}

func TestKeyFromDataDirIsStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, err := KeyFromDataDir(dir)
	if err != nil || len(k1) < 32 {
		t.Fatalf("key %q, %v", k1, err)
	}
	k2, _ := KeyFromDataDir(dir)
	if k1 != k2 {
		t.Error("a second read generated another key")
	}
}
