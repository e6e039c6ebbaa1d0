package bff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func fingerprint(t testing.TB, body string) Fingerprint {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &obj); err != nil {
		t.Fatal(err)
	}
	fp, err := FingerprintOf("POST", "/api/bff/register/", obj)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestFingerprintIsCanonical(t *testing.T) {
	t.Parallel()
	a := fingerprint(t, `{"b": [1, 2.50, {"y":1,"x":"é"}], "a": "x"}`)
	b := fingerprint(t, `{"a":"x","b":[1,2.50,{"x":"\u00e9","y":1}]}`)
	if a != b {
		t.Fatal("the same object with other key order and spacing has another fingerprint")
	}
	if a == fingerprint(t, `{"a":"x","b":[1,2.5,{"x":"é","y":1}]}`) || a == fingerprint(t, `{"a":"y","b":[1,2.50,{"x":"é","y":1}]}`) {
		t.Fatal("different bodies share a fingerprint")
	}
}

func TestStoredAnswerNeedsTheOriginalBody(t *testing.T) {
	t.Parallel()
	s, _ := NewSecrets([]byte("0123456789abcdef0123456789abcdef"))
	fp := fingerprint(t, `{"password1":"secret"}`)
	sealed, err := s.SealAnswer(fp, "key-1", 201, []byte(`{"tokens":{"access":"tok"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("tok")) {
		t.Fatal("sealed answer holds the token in clear")
	}
	status, body, err := s.OpenAnswer(fp, "key-1", sealed)
	if err != nil || status != 201 || string(body) != `{"tokens":{"access":"tok"}}` {
		t.Fatalf("open: %d %s %v", status, body, err)
	}
	if _, _, err := s.OpenAnswer(fingerprint(t, `{"password1":"guess"}`), "key-1", sealed); err == nil {
		t.Fatal("opened with another request's fingerprint")
	}
	if _, _, err := s.OpenAnswer(fp, "key-2", sealed); err == nil {
		t.Fatal("opened under another key")
	}
	other, _ := NewSecrets([]byte("another-server-secret-0123456789"))
	if _, _, err := other.OpenAnswer(fp, "key-1", sealed); err == nil {
		t.Fatal("opened with another server secret")
	}
	if s.CheckOf(fp) == other.CheckOf(fp) || strings.Contains(s.CheckOf(fp), "secret") {
		t.Fatal("fingerprint check not keyed by the server secret")
	}
}

func TestSealBindsSagaAndField(t *testing.T) {
	t.Parallel()
	s, _ := NewSecrets([]byte("0123456789abcdef0123456789abcdef"))
	sealed := s.Seal("saga-1", sealToken, []byte("access"))
	if got, err := s.Open("saga-1", sealToken, sealed); err != nil || string(got) != "access" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.Open("saga-2", sealToken, sealed); err == nil {
		t.Fatal("opened for another saga")
	}
	if _, err := s.Open("saga-1", sealEmail, sealed); err == nil {
		t.Fatal("opened as another field")
	}
	if _, err := NewSecrets([]byte("short")); err == nil {
		t.Fatal("a short secret was accepted")
	}
	d1, _ := DeriveSecret([]byte("jwt-key"))
	d2, _ := DeriveSecret([]byte("jwt-key"))
	if !bytes.Equal(d1, d2) || bytes.Equal(d1, []byte("jwt-key")) || len(d1) != 32 {
		t.Fatal("derived secret not stable or equal to the key")
	}
}

func TestIdempotencyFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	ctx := context.Background()
	fp := fingerprint(t, `{"email":"a@b.co"}`)

	claim, replay, err := h.svc.BeginIdempotent(ctx, "k", fp)
	if err != nil || claim == nil || replay != nil {
		t.Fatalf("first: %v %v %v", claim, replay, err)
	}
	// While in flight: 409 for the same body, 422 for another.
	if _, _, err := h.svc.BeginIdempotent(ctx, "k", fp); codeOf(err) != CodeKeyInFlight {
		t.Fatalf("in flight: %v", err)
	}
	if _, _, err := h.svc.BeginIdempotent(ctx, "k", fingerprint(t, `{"email":"x@b.co"}`)); codeOf(err) != CodeKeyReused {
		t.Fatalf("other body: %v", err)
	}
	h.svc.CompleteIdempotent(ctx, claim, 201, []byte(`{"ok":true}`), true)
	_, replay, err = h.svc.BeginIdempotent(ctx, "k", fp)
	if err != nil || replay == nil || replay.Status != 201 || string(replay.Body) != `{"ok":true}` {
		t.Fatalf("replay: %+v %v", replay, err)
	}
	// After 24 hours the key is forgotten.
	h.clock.advance(KeyTTL + time.Second)
	if claim, _, err := h.svc.BeginIdempotent(ctx, "k", fingerprint(t, `{"email":"x@b.co"}`)); err != nil || claim == nil {
		t.Fatalf("expired key not reusable: %v", err)
	}
}

func TestIdempotency5xxAndCrashedRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	ctx := context.Background()
	fp := fingerprint(t, `{"email":"a@b.co"}`)

	// A 5xx whose saga is terminal (or never written) releases the key.
	claim, _, _ := h.svc.BeginIdempotent(ctx, "k1", fp)
	h.svc.CompleteIdempotent(ctx, claim, 503, []byte(`{}`), false)
	if c, _, err := h.svc.BeginIdempotent(ctx, "k1", fp); err != nil || c == nil {
		t.Fatalf("after a 5xx with nothing pending: %v", err)
	}

	// A 5xx whose saga is pending keeps the key in flight, until the lease
	// expired and the saga settled.
	claim, _, _ = h.svc.BeginIdempotent(ctx, "k2", fp)
	_ = h.store.CreateSaga(ctx, &Saga{ID: claim.SagaID, Kind: KindRegister, State: StateCompensating})
	h.svc.CompleteIdempotent(ctx, claim, 503, []byte(`{}`), false)
	h.clock.advance(h.svc.leaseTTL + time.Second)
	if _, _, err := h.svc.BeginIdempotent(ctx, "k2", fp); codeOf(err) != CodeKeyInFlight {
		t.Fatalf("pending saga: %v", err)
	}
	_ = h.store.TransitionSaga(ctx, claim.SagaID, 0, SagaChange{State: StateCompensated})
	if c, _, err := h.svc.BeginIdempotent(ctx, "k2", fp); err != nil || c == nil {
		t.Fatalf("settled saga: %v", err)
	}

	h.store.down = true
	if _, _, err := h.svc.BeginIdempotent(ctx, "k3", fp); codeOf(err) != CodeStoreUnavailable {
		t.Fatalf("store down: %v", err)
	}
}

func codeOf(err error) string {
	var be *Error
	if errors.As(err, &be) {
		return be.Code
	}
	return ""
}

func BenchmarkFingerprintAndSealAnswer(b *testing.B) {
	s, _ := NewSecrets([]byte("0123456789abcdef0123456789abcdef"))
	var obj map[string]json.RawMessage
	_ = json.Unmarshal([]byte(`{"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","phone_number":"+15035550100",
		"password1":"Tr1cky-Wombat-Lantern","password2":"Tr1cky-Wombat-Lantern","street_address":"123 Main St",
		"city":"Portland","state":"OR","postal_code":"97201"}`), &obj)
	answer := bytes.Repeat([]byte("x"), 1200)
	b.ReportAllocs()
	for b.Loop() {
		fp, _ := FingerprintOf("POST", "/api/bff/register/", obj)
		_ = s.CheckOf(fp)
		sealed, _ := s.SealAnswer(fp, "key", 201, answer)
		_, _, _ = s.OpenAnswer(fp, "key", sealed)
	}
}

func BenchmarkSealSagaSecret(b *testing.B) {
	s, _ := NewSecrets([]byte("0123456789abcdef0123456789abcdef"))
	tok := bytes.Repeat([]byte("t"), 300)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Seal("0b9f4a8e-3c3e-4f7e-9a53-6a9f0e2d6c11", sealToken, tok)
	}
}

func BenchmarkTransitionApply(b *testing.B) {
	now := time.Now()
	ch := SagaChange{State: StateUserCreated, At: now, UserID: "u1", TokenSealed: make([]byte, 300), TokenExpiresAt: now}
	b.ReportAllocs()
	for b.Loop() {
		var s Saga
		ch.apply(&s)
	}
}

// The 201 of a registration with a key is encoded and sealed once: the
// body answered is the one the saga recorded, and the key stores the
// saga's sealed answer as it is.
func TestCreatedAnswerIsSealedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	ctx := context.Background()
	fp := fingerprint(t, `{"email":"a@b.co"}`)
	claim, _, err := h.svc.BeginIdempotent(ctx, "k", fp)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.svc.Register(ctx, validRegistration, claim)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := h.store.GetSaga(ctx, claim.SagaID)
	if _, recorded, err := h.svc.secrets.OpenAnswer(fp, claim.KeyID, sg.AnswerSealed); err != nil || !bytes.Equal(recorded, body) {
		t.Fatalf("answered %s, the saga recorded %s (%v)", body, recorded, err)
	}
	h.svc.CompleteIdempotent(ctx, claim, 201, body, true)
	rec, _ := h.store.GetKey(ctx, claim.KeyID, h.clock.now())
	if !bytes.Equal(rec.Answer, sg.AnswerSealed) {
		t.Fatal("the key's answer was sealed a second time")
	}
	_, replay, err := h.svc.BeginIdempotent(ctx, "k", fp)
	if err != nil || replay == nil || !bytes.Equal(replay.Body, body) {
		t.Fatalf("replay %+v %v", replay, err)
	}
}
