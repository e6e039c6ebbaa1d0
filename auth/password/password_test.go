package password

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth"
)

// cheap parameters keep the tests fast where the parameters are not tested.
var cheap = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func TestOWASPHashFormat(t *testing.T) {
	t.Parallel()
	h, err := New(OWASP(), 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(context.Background(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(enc) {
		t.Fatalf("hash %q is not $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>", enc)
	}
	ok, rehash, err := h.Verify(context.Background(), "correct horse", enc)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify = %v %v %v", ok, rehash, err)
	}
	if ok, _, _ := h.Verify(context.Background(), "correct horsE", enc); ok {
		t.Fatal("a wrong password matched")
	}
	enc2, _ := h.Hash(context.Background(), "correct horse")
	if enc2 == enc {
		t.Fatal("two hashes of one password are equal: no random salt")
	}
}

// The RFC 9106 reference output is reproduced by the encoding (a hash made by
// another Argon2id implementation verifies here).
func TestVerifiesReferenceHash(t *testing.T) {
	t.Parallel()
	h, _ := New(cheap, 1)
	// Produced by the argon2 reference CLI: echo -n password | argon2 somesalt -id -t 2 -k 65536 -p 1 -l 32
	const ref = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	ok, rehash, err := h.Verify(context.Background(), "password", ref)
	if err != nil || !ok || !rehash {
		t.Fatalf("reference hash: ok=%v rehash=%v err=%v (rehash expected: other parameters)", ok, rehash, err)
	}
}

func TestDjangoPBKDF2(t *testing.T) {
	t.Parallel()
	h, _ := New(cheap, 2)
	// Made by Django 3.2's make_password('Legacy-Pass-2019', salt=..., hasher='pbkdf2_sha256').
	const django = "pbkdf2_sha256$260000$aB3dE5gH7jK9mN1pQ3sT5v$9b1QoavcWdDx6X+EGx5wDESelertN167NkLVO/jbbr8="
	got, err := DjangoPBKDF2("Legacy-Pass-2019", "aB3dE5gH7jK9mN1pQ3sT5v", 260000)
	if err != nil || got != django {
		t.Fatalf("DjangoPBKDF2 = %q, want Django's %q", got, django)
	}
	ok, rehash, err := h.Verify(context.Background(), "Legacy-Pass-2019", django)
	if err != nil || !ok || !rehash {
		t.Fatalf("Django hash: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
	if ok, _, _ := h.Verify(context.Background(), "Legacy-Pass-2018", django); ok {
		t.Fatal("wrong password matched a Django hash")
	}
}

func TestDjangoPBKDF2AgainstPythonHashlib(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: cannot cross-check pbkdf2 with hashlib.pbkdf2_hmac")
	}
	const script = `import hashlib,base64,sys; print(base64.b64encode(hashlib.pbkdf2_hmac('sha256', sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3]), 32)).decode())`
	for _, c := range []struct {
		pw, salt string
		rounds   int
	}{{"héllo wörld", "NaCl", 1000}, {"p", "s", 1}, {"Legacy-Pass-2019", "x7Yq", 150000}} {
		out, err := exec.Command(py, "-c", script, c.pw, c.salt, strconv.Itoa(c.rounds)).Output()
		if err != nil {
			t.Fatalf("python3: %v", err)
		}
		got, _ := DjangoPBKDF2(c.pw, c.salt, c.rounds)
		if want := "pbkdf2_sha256$" + strconv.Itoa(c.rounds) + "$" + c.salt + "$" + strings.TrimSpace(string(out)); got != want {
			t.Errorf("%+v: %q, python says %q", c, got, want)
		}
	}
}

func TestMalformedHashesNeverMatch(t *testing.T) {
	t.Parallel()
	h, _ := New(cheap, 1)
	good, _ := h.Hash(context.Background(), "pw")
	parts := strings.Split(good, "$")
	for _, enc := range []string{
		"", "!unusable", "pw", "md5$x$y", "bcrypt$2b$12$abc",
		"$argon2i$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=16$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=99999999,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1000,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$!!!$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$" + parts[4] + "$",
		"pbkdf2_sha256$99999999999$salt$9b1QoavcWdDx6X+EGx5wDESelertN167NkLVO/jbbr8=",
		"pbkdf2_sha256$1000$salt$short",
		"pbkdf2_sha256$x$salt$9b1QoavcWdDx6X+EGx5wDESelertN167NkLVO/jbbr8=",
	} {
		if ok, _, err := h.Verify(context.Background(), "pw", enc); ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v", enc, ok, err)
		}
	}
}

func TestParametersChangeTriggersRehash(t *testing.T) {
	t.Parallel()
	old, _ := New(Params{MemoryKiB: 32, Iterations: 1, Parallelism: 1}, 1)
	cur, _ := New(cheap, 1)
	enc, _ := old.Hash(context.Background(), "pw")
	if ok, rehash, _ := cur.Verify(context.Background(), "pw", enc); !ok || !rehash {
		t.Fatalf("older parameters: ok=%v rehash=%v", ok, rehash)
	}
	for _, bad := range []Params{{0, 1, 1}, {64, 0, 1}, {64, 1, 0}, {8, 1, 2}, {maxMemoryKiB + 1, 1, 1}} {
		if _, err := New(bad, 1); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	h, _ := New(cheap, 2)
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if err := h.acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
			h.release()
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 2 || p < 1 {
		t.Fatalf("peak concurrency %d, want at most 2", p)
	}
}

func TestWaitingRespectsContext(t *testing.T) {
	t.Parallel()
	h, _ := New(cheap, 1)
	h.sem <- struct{}{} // every slot taken
	defer h.release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, auth.ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash while saturated: %v", err)
	}
	enc := "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	if _, _, err := h.Verify(ctx, "pw", enc); !errors.Is(err, auth.ErrBusy) {
		t.Fatalf("Verify while saturated: %v", err)
	}
}

func TestDefaultConcurrencyIsGOMAXPROCS(t *testing.T) {
	t.Parallel()
	h, _ := New(cheap, 0)
	if cap(h.sem) < 1 {
		t.Fatalf("semaphore size %d", cap(h.sem))
	}
}

func BenchmarkHashOWASP(b *testing.B) {
	h, _ := New(OWASP(), 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "Tr1cky-Wombat-Lantern"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyOWASP(b *testing.B) {
	h, _ := New(OWASP(), 0)
	ctx := context.Background()
	enc, _ := h.Hash(ctx, "Tr1cky-Wombat-Lantern")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, _ := h.Verify(ctx, "Tr1cky-Wombat-Lantern", enc); !ok {
			b.Fatal("no match")
		}
	}
}
