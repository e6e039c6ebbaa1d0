package webtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	authhttp "github.com/acme/customer-platform/auth/httpapi"
	authmongo "github.com/acme/customer-platform/auth/mongodb"
	bffhttp "github.com/acme/customer-platform/bff/httpapi"
	customerhttp "github.com/acme/customer-platform/customer/httpapi"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

const goodPassword = "Tr1cky-Wombat-Lantern"

// apiDocs holds the API calls the tests make themselves to the documents.
var apiDocs = apitest.Docs{
	apitest.MustLoad("bff", bffhttp.OpenAPI()),
	apitest.MustLoad("auth", authhttp.OpenAPI()),
	apitest.MustLoad("customer", customerhttp.OpenAPI()),
}

// stack is the three services, each on its own fresh database, with Redis
// for the BFF's cache and the change feed.
type stack struct {
	bff        string // the BFF's base URL
	authDB     *mongo.Database
	customerDB *mongo.Database
}

func startStack(t *testing.T) *stack {
	t.Helper()
	sys := systest.Start(t, systest.Options{Redis: true})
	return &stack{bff: sys.URL("bff"), authDB: sys.DB("auth"), customerDB: sys.DB("customer")}
}

// users counts the auth users with email.
func (s *stack) users(t *testing.T, email string) []bson.M {
	t.Helper()
	return testenv.Find(t, s.authDB.Collection(authmongo.UsersCollection), bson.D{{Key: "email", Value: strings.ToLower(email)}})
}

// profiles lists the customer profiles of a user.
func (s *stack) profiles(t *testing.T, userID string) []bson.M {
	t.Helper()
	return testenv.Find(t, s.customerDB.Collection(custmongo.CustomersCollection), bson.D{{Key: "user_id", Value: userID}})
}

// register calls the API directly and returns the status and the body.
func (s *stack) register(t *testing.T, body map[string]string) (int, map[string]any) {
	t.Helper()
	a := testenv.Call(t, apiDocs.Client(t, testenv.DefaultClient), http.MethodPost, s.bff+"/api/bff/register/", body, nil)
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Fatalf("register answered %d %q", a.Status, a.Body)
	}
	return a.Status, m
}

// chromium finds the system's Chromium: $CHROMIUM, else chromium or
// chromium-browser on PATH.
func chromium() (string, bool) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// needChromium returns the path of Chromium, or skips the test when there is
// none (or in -short mode).
func needChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests skipped in -short mode: they start the services and a browser")
	}
	path, ok := chromium()
	if !ok {
		t.Skip("browser tests skipped: Chromium is not installed (Debian package chromium; or set CHROMIUM to its path)")
	}
	return path
}

// startBrowser starts a headless Chromium with a fresh profile for the test.
// Start it after the services: it is then stopped before them, and its open
// connections do not hold up their drain.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in a container: the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return bctx
}

// page is one browser tab with a phone-sized viewport, recording its
// console.
type page struct {
	ctx context.Context
	mu  sync.Mutex
	log []chromedp.ConsoleMessage
}

func newPage(t *testing.T, browserCtx context.Context) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 45*time.Second)
	p := &page{ctx: ctx}
	messages := chromedp.Console(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.log = append(p.log, m)
			p.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		wg.Wait()
	})
	p.do(t, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	return p
}

func (p *page) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func value[T any](t *testing.T, p *page, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(p.ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// consoleErrors returns the console's errors and uncaught exceptions,
// except those expected says are expected; warnings are logged.
func (p *page) consoleErrors(t *testing.T, expected func(chromedp.ConsoleMessage) bool) []string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.log {
		switch {
		case m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException:
			if m.Type == chromedp.ConsoleWarning {
				t.Logf("console warning: %s (%s)", m.Text, m.URL)
			}
		case expected != nil && expected(m):
		default:
			out = append(out, m.String()+" ("+m.Source+" "+m.URL+")")
		}
	}
	return out
}

// artifact writes b under test-artifacts/ at the repository root (git
// ignores it) and returns the path.
func artifact(t *testing.T, name string, b []byte) string {
	t.Helper()
	dir, err := os.Getwd()
	testenv.Must(t, err, "working directory")
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	out := filepath.Join(dir, "test-artifacts", name)
	testenv.Must(t, os.MkdirAll(filepath.Dir(out), 0o755), "mkdir")
	testenv.Must(t, os.WriteFile(out, b, 0o644), "write %s", out)
	return out
}
