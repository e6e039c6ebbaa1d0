package authd_test

import (
	"net/http"
	"testing"
	"time"
)

const msgBadDeadline = "Registration-Deadline must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05.123Z."

// TestRegistrationDeadline: a registration sent with a Registration-Deadline
// creates its user only if the insert starts before the deadline. With a
// password hash slower than the time left (Argon2 at 64 MiB, the
// expensive step), the deadline passes during the hash: 503
// deadline_exceeded and no user, so the caller that gave up at the deadline
// may take "no user" as the truth. A deadline far enough ahead registers as
// usual; a malformed one is a 400 naming the header, with nothing stored.
func TestRegistrationDeadline(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"ARGON2_MEMORY_KIB": "65536", "ARGON2_ITERATIONS": "8"})
	register := func(email, deadline string) answer {
		return s.do(req{method: http.MethodPost, path: "/api/auth/register/", body: regBody(email, "Dee", "Line", goodPassword),
			header: map[string]string{"Registration-Deadline": deadline, "Idempotency-Key": "saga-" + email}})
	}
	stamp := func(d time.Duration) string { return time.Now().Add(d).UTC().Format("2006-01-02T15:04:05.000Z07:00") }

	// The hash alone takes longer than the time left.
	began := time.Now()
	a := register("slow@example.com", stamp(20*time.Millisecond))
	if m := a.Map(t); a.Status != http.StatusServiceUnavailable || m["code"] != "deadline_exceeded" {
		t.Fatalf("deadline passed during the hash: %d %s", a.Status, a.Body)
	}
	if took := time.Since(began); took < 20*time.Millisecond {
		t.Errorf("answered in %s, before the deadline passed", took)
	}
	// Already past when it arrives.
	if a := register("past@example.com", stamp(-time.Second)); a.Status != http.StatusServiceUnavailable || a.Map(t)["code"] != "deadline_exceeded" {
		t.Fatalf("a deadline already past: %d %s", a.Status, a.Body)
	}
	for _, email := range []string{"slow@example.com", "past@example.com"} {
		if n := s.countByEmail(email); n != 0 {
			t.Errorf("%s: %d users stored after the deadline passed", email, n)
		}
	}

	// Time enough: registered, with its key.
	if a := register("slow@example.com", stamp(time.Minute)); a.Status != http.StatusCreated {
		t.Fatalf("a deadline a minute ahead: %d %s", a.Status, a.Body)
	}
	if r := results(t, s.get("/api/auth/users/?email=slow%40example.com", s.serviceToken())); len(r) != 1 || r[0]["registration_key"] != "saga-slow@example.com" {
		t.Errorf("the registration in time: %v", r)
	}

	// Malformed: 400 naming the header, with the body's other problems.
	for _, d := range []string{"", "in five seconds", "2026-01-01 12:00:00Z", "2026-01-01T12:00:00"} {
		if f := register("bad@example.com", d).fields(t); len(f) != 1 || len(f["Registration-Deadline"]) != 1 || f["Registration-Deadline"][0] != msgBadDeadline {
			t.Errorf("deadline %q: %v", d, f)
		}
	}
	b := regBody("bad@example.com", "Dee", "Line", goodPassword)
	b["first_name"] = 7
	f := s.do(req{method: http.MethodPost, path: "/api/auth/register/", body: b, header: map[string]string{"Registration-Deadline": "soon"}}).fields(t)
	if len(f) != 2 || f["Registration-Deadline"][0] != msgBadDeadline || f["first_name"][0] != "Not a valid string." {
		t.Errorf("a bad deadline with a bad body: %v", f)
	}
	if n := s.countByEmail("bad@example.com"); n != 0 {
		t.Errorf("%d users stored after refused registrations", n)
	}
}
