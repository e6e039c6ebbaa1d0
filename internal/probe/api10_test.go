package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/bff"
	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// tamperer is a reverse proxy to one service that rewrites the answers
// to the requests its rule selects: the origin acts, its caller reads
// whatever the rule makes of the answer. (internal/faultproxy can fail an
// answer, not rewrite it.)
type tamperer struct {
	*httptest.Server
	mu       sync.Mutex
	method   string
	path     string
	rewrite  func(body []byte) []byte
	tampered int
}

func newTamperer(t *testing.T, target string) *tamperer {
	t.Helper()
	to, err := url.Parse(target)
	testenv.Must(t, err, "parse %s", target)
	tp := &tamperer{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(to)
			// The BFF's caller's address goes on to auth's rate limits.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
		},
		ModifyResponse: tp.modify,
	}
	tp.Server = httptest.NewServer(proxy)
	t.Cleanup(tp.Close)
	return tp
}

// set makes the answers to method path (a prefix) rewritten; nil rewrite
// passes everything.
func (tp *tamperer) set(method, path string, rewrite func([]byte) []byte) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.method, tp.path, tp.rewrite, tp.tampered = method, path, rewrite, 0
}

func (tp *tamperer) count() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.tampered
}

func (tp *tamperer) modify(resp *http.Response) error {
	tp.mu.Lock()
	rewrite := tp.rewrite
	match := rewrite != nil && resp.Request.Method == tp.method && strings.HasPrefix(resp.Request.URL.Path, tp.path)
	if match {
		tp.tampered++
	}
	tp.mu.Unlock()
	if !match {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	out := rewrite(body)
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// What a compromised or broken origin answers.
var (
	truncated = func(b []byte) []byte { return b[:len(b)/2] }
	notJSON   = func([]byte) []byte { return []byte("<html><body>502 Bad Gateway</body></html>") }
	// wrongShape keeps the JSON valid and its members' types wrong.
	wrongShape = func([]byte) []byte { return []byte(`{"id": 42, "user": [], "tokens": "none", "email": {"$ne": null}}`) }
	// oversized is the genuine answer with a 2 MiB member added: valid,
	// well-shaped, and more than a client should read.
	oversized = func(b []byte) []byte {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return b
		}
		m["padding"] = strings.Repeat("p", 2<<20)
		out, _ := json.Marshal(m)
		return out
	}
)

// probeAPI10UnsafeConsumption: a BFF replica whose auth and customer
// services answer malformed, mis-shaped or oversized bodies answers a
// clean 502/503 in the contract's shape (or, where the saga can prove the
// registration whole, its 201), never a 500 or the upstream's text, and
// leaves no half-done registration once its sagas settle.
func probeAPI10UnsafeConsumption(t *testing.T, s *suite) {
	authT, custT := newTamperer(t, s.auth), newTamperer(t, s.customer)
	rep := s.sys.AddReplica("bff", systest.ReplicaOptions{Env: map[string]string{
		"AUTH_URL": authT.URL, "CUSTOMER_URL": custT.URL, "AUTH_TIMEOUT": "1s"}})
	registered := map[string]int{} // email → the status answered
	// resetBreakers logs in through both tamperers, passing everything,
	// so that the replica's circuit breakers start each case closed; the
	// account is the case's own (a login per case would exhaust one
	// email's login limit).
	resetBreakers := func(known *account) {
		authT.set("", "", nil)
		custT.set("", "", nil)
		testenv.Eventually(t, 15*time.Second, func() error {
			a := s.call(t, http.MethodPost, rep.URL+"/api/bff/login/", map[string]string{"email": known.email, "password": known.password}, from(known.addr))
			if a.Status != http.StatusOK {
				return fmt.Errorf("login through the tampering replica: %s", a)
			}
			return nil
		})
	}
	for _, x := range []struct {
		what        string
		tp          *tamperer
		method      string
		path        string
		rewrite     func([]byte) []byte
		maySucceed  bool // the saga may prove the registration whole
		registering bool
	}{
		{"auth register answer truncated", authT, http.MethodPost, "/api/auth/register/", truncated, false, true},
		{"auth register answer not JSON", authT, http.MethodPost, "/api/auth/register/", notJSON, false, true},
		{"auth register answer mis-shaped", authT, http.MethodPost, "/api/auth/register/", wrongShape, false, true},
		{"auth register answer oversized", authT, http.MethodPost, "/api/auth/register/", oversized, false, true},
		{"customer create answer truncated", custT, http.MethodPost, "/api/v1/customers/profile/create/", truncated, true, true},
		{"customer create answer oversized", custT, http.MethodPost, "/api/v1/customers/profile/create/", oversized, true, true},
		{"auth login answer mis-shaped", authT, http.MethodPost, "/api/auth/login/", wrongShape, false, false},
		{"auth login answer oversized", authT, http.MethodPost, "/api/auth/login/", oversized, false, false},
	} {
		t.Run(x.what, func(t *testing.T) {
			known := s.customerAccount(t, "unsafe-known")
			resetBreakers(known)
			x.tp.set(x.method, x.path, x.rewrite)
			var a testenv.Answer
			email := known.email
			if x.registering {
				email = s.newEmail("unsafe")
				a = s.call(t, http.MethodPost, rep.URL+"/api/bff/register/", registration(email, "Probe-Quartz-Unsafe-7710"), from(s.newAddr()))
			} else {
				a = s.call(t, http.MethodPost, rep.URL+"/api/bff/login/", map[string]string{"email": known.email, "password": known.password}, from(known.addr))
			}
			if x.tp.count() == 0 {
				t.Fatalf("no answer was tampered with (%s): %s", x.path, a)
			}
			if strings.Contains(string(a.Body), "ppppp") || strings.Contains(string(a.Body), "<html>") || strings.Contains(string(a.Body), "$ne") {
				t.Errorf("the BFF passed the upstream's answer on: %.300s", a.Body)
			}
			switch {
			case a.Status == http.StatusCreated && x.maySucceed:
				var v struct {
					User    struct{ ID string }
					Profile struct {
						UserID string `json:"user_id"`
					}
				}
				a.JSON(t, &v)
				if v.User.ID == "" || v.Profile.UserID != v.User.ID {
					t.Errorf("a 201 with a broken view: %s", a)
				}
			case a.Status == http.StatusBadGateway || a.Status == http.StatusServiceUnavailable:
				wantError(t, x.what, a, a.Status)
			default:
				t.Errorf("%s: %s, want 502 or 503", x.what, a)
			}
			x.tp.set("", "", nil)
			if x.registering {
				registered[email] = a.Status
			}
		})
	}
	// Once every saga settles (those whose register answer was lost wait
	// for their deadline), each registration is whole or absent.
	testenv.Eventually(t, 30*time.Second, testenv.Holds("every saga settles", func() bool { return sagasSettled(t, s) }))
	for email, status := range registered {
		id := s.userByEmail(t, email)
		if id != "" && !s.profileExists(t, id) {
			t.Errorf("a half-done registration: user %s of %s has no profile", id, email)
		}
		if status == http.StatusCreated && id == "" {
			t.Errorf("a 201 for %s, and no user", email)
		}
	}
}

// sagasSettled reports whether every saga of the BFF is in a final state.
func sagasSettled(t *testing.T, s *suite) bool {
	for _, d := range testenv.Find(t, s.sys.DB("bff").Collection(bffmongo.SagasCollection), map[string]any{}) {
		if st, _ := d["state"].(string); !bff.Terminal(st) {
			return false
		}
	}
	return true
}
