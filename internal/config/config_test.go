package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	t.Parallel()
	r := New(FromMap(map[string]string{
		"A": "x", "D": "2s", "N": "7", "B": "yes", "S": "hunter2", "BADD": "soon", "BADN": "many", "U": "http://h:1/", "L": " 10.0.0.0/8, ,::1 ",
	}))
	if got := r.String("A", "d"); got != "x" {
		t.Errorf("String = %q", got)
	}
	if got := r.String("MISSING", "d"); got != "d" {
		t.Errorf("default = %q", got)
	}
	if got := r.Duration("D", 0); got != 2*time.Second {
		t.Errorf("Duration = %v", got)
	}
	if got := r.Int("N", 0); got != 7 {
		t.Errorf("Int = %d", got)
	}
	if !r.Bool("B", false) {
		t.Error("Bool = false")
	}
	if got := r.List("L"); len(got) != 2 || got[0] != "10.0.0.0/8" || got[1] != "::1" {
		t.Errorf("List = %q", got)
	}
	if got := r.URL("U", ""); got != "http://h:1" {
		t.Errorf("URL = %q", got)
	}
	s := r.Secret("S", "")
	if s.Reveal() != "hunter2" || s.String() == "hunter2" {
		t.Errorf("secret not masked: %q", s.String())
	}
	b, _ := json.Marshal(struct{ K Secret }{s})
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("secret leaked in JSON: %s", b)
	}
	if r.Err() != nil {
		t.Fatalf("unexpected error: %v", r.Err())
	}
	r.Duration("BADD", time.Second)
	r.Int("BADN", 1)
	err := r.Err()
	if err == nil || !strings.Contains(err.Error(), "BADD") || !strings.Contains(err.Error(), "BADN") {
		t.Fatalf("want both problems reported, got %v", err)
	}
	if keys := r.Keys(); len(keys) != 10 || keys[0] != "A" {
		t.Errorf("Keys = %v", keys)
	}
}

func TestSigningKey(t *testing.T) {
	t.Parallel()
	strong := strings.Repeat("k", MinSigningKey)
	for name, tc := range map[string]struct {
		key, env string
		problem  string // "" when accepted
	}{
		"missing":                 {"", "production", "JWT_SIGNING_KEY: required"},
		"missing in development":  {"", Development, "JWT_SIGNING_KEY: required"},
		"weak in production":      {"secret", "production", "JWT_SIGNING_KEY: too short: 6 bytes"},
		"weak in staging":         {strong[1:], "staging", "JWT_SIGNING_KEY: too short: 31 bytes"},
		"weak in development":     {"secret", Development, ""},
		"256 bits in production":  {strong, "production", ""},
		"longer in production":    {strong + "more", "production", ""},
		"padded weak, production": {"  secret  ", "production", "too short: 6 bytes"},
	} {
		r := New(FromMap(map[string]string{"JWT_SIGNING_KEY": tc.key}))
		got := r.SigningKey("JWT_SIGNING_KEY", tc.env)
		err := r.Err()
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.problem)
		case tc.problem == "" && got.Reveal() != strings.TrimSpace(tc.key):
			t.Errorf("%s: key %q", name, got.Reveal())
		}
	}
}

func TestSigningKeys(t *testing.T) {
	t.Parallel()
	cur, old1, old2 := strings.Repeat("c", MinSigningKey), strings.Repeat("a", MinSigningKey), strings.Repeat("b", MinSigningKey+5)
	r := New(FromMap(map[string]string{"K": cur, "P": old1 + " , " + old2}))
	k := r.SigningKeys("K", "P", "production")
	if r.Err() != nil || string(k.Key()) != cur || len(k.PreviousKeys()) != 2 || string(k.PreviousKeys()[1]) != old2 {
		t.Fatalf("keys %v, %v", k, r.Err())
	}
	if b, _ := json.Marshal(k); strings.Contains(string(b), "ccc") || strings.Contains(string(b), "aaa") {
		t.Fatalf("logged keys: %s", b)
	}
	r = New(FromMap(map[string]string{"K": cur, "P": "short"}))
	r.SigningKeys("K", "P", "production")
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "P:") || strings.Contains(err.Error(), "short\"") {
		t.Fatalf("a short previous key: %v", err)
	}
	r = New(FromMap(map[string]string{"K": cur}))
	if k := r.SigningKeys("K", "P", "production"); r.Err() != nil || len(k.PreviousKeys()) != 0 {
		t.Fatalf("no previous keys: %v %v", k, r.Err())
	}
}
