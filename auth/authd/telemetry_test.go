package authd_test

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// scrape returns the samples of the service's /metrics whose line starts
// with name{ and carries every label given, keyed by their whole label set.
func (s *server) scrape(t *testing.T, name string, labels ...string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
next:
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[len(name):i]] = v
	}
	return out
}

func (s *server) sample(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	got := s.scrape(t, name, labels...)
	if len(got) != 1 {
		t.Fatalf("%s %v: %d samples: %v", name, labels, len(got), got)
	}
	for _, v := range got {
		return v
	}
	return 0
}

// Password hashes are timed by operation and outcome, and the hashing
// slots are visible.
func TestPasswordHashMetrics(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"PASSWORD_HASH_CONCURRENCY": "3"})
	s.register("hash-metrics@example.com", "Ada", "Lovelace")
	if a := s.login("hash-metrics@example.com", goodPassword); a.Status != http.StatusOK {
		t.Fatalf("login: %d %s", a.Status, a.Body)
	}
	if a := s.login("hash-metrics@example.com", "Wrong-Password-42"); a.Status != http.StatusUnauthorized {
		t.Fatalf("bad login: %d %s", a.Status, a.Body)
	}
	if a := s.login("nobody-here@example.com", goodPassword); a.Status != http.StatusUnauthorized {
		t.Fatalf("unknown email: %d %s", a.Status, a.Body)
	}
	const count = "auth_password_hash_duration_seconds_count"
	for op, want := range map[string]float64{"hash": 1, "verify": 2, "verify_dummy": 1} {
		if got := s.sample(t, count, `operation="`+op+`"`, `outcome="ok"`); got != want {
			t.Errorf("%s: %v, want %v", op, got, want)
		}
	}
	if got := s.scrape(t, count, `outcome="busy"`); len(got) != 0 {
		t.Errorf("busy outcomes: %v", got)
	}
	for name, want := range map[string]float64{"auth_password_hash_limit": 3, "auth_password_hash_active": 0, "auth_password_hash_waiting": 0} {
		if got := s.sample(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// The bootstrap admin's email and password are never logged whole.
func TestBootstrapAdminNotLogged(t *testing.T) {
	t.Parallel()
	const email, password = "root.admin@corp-example.com", "Adm1n-Bootstrap-Secret"
	s := start(t, map[string]string{"AUTH_BOOTSTRAP_ADMIN_EMAIL": email, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": password})
	out := s.logs.String()
	for _, secret := range []string{email, "root.admin", password} {
		if strings.Contains(out, secret) {
			t.Errorf("the log carries %q: %s", secret, out)
		}
	}
	if !slices.ContainsFunc(s.logs.Lines(t), func(l map[string]any) bool {
		return l["msg"] == "bootstrap admin" && l["email_domain"] == "corp-example.com" && l["created"] == true
	}) {
		t.Errorf("no bootstrap line with the domain: %s", out)
	}
}
