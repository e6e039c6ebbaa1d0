package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/bff/bffd"
	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/config"
)

// service is one of the platform's services as the deployment files know
// it: Name is its compose service, its Kubernetes Deployment, Service and
// container, and its binary (cmd/<Name>, /usr/local/bin/<Name> in the image).
type service struct {
	Name string
	load func(config.Lookup) (serviceConfig, error)
	// static, for a binary whose LoadConfig cannot be imported (package
	// main), are the keys its source reads; load is nil then.
	static []string
	// Defaulted are the variables the service reads that every deployment
	// (compose, k8s base, k8s overlays) deliberately leaves unset, so the
	// code's default applies; each with the reason.
	Defaulted map[string]string
}

// serviceConfig is what the tests need of a service's loaded Config.
type serviceConfig struct {
	HTTPAddr, MetricsAddr string
	ShutdownTimeout       time.Duration
}

// shutdownTail is how long a service may take after its drain: each
// service's Run (authd, customerd, bffd) closes its MongoDB client
// (mongodb.Disconnect) and then flushes its telemetry (telemetry.Close),
// each bounded by its own timeout, read here from the code. The grace
// periods must cover the drain and both.
func shutdownTail(t testing.TB) time.Duration {
	t.Helper()
	return boundOf(t, "internal/mongodb/mongodb.go", "Disconnect") + boundOf(t, "internal/telemetry/telemetry.go", "Close")
}

// boundOf returns the timeout of the context.WithTimeout(..., N*time.Second)
// call in the function (or method) name of the repository file path.
func boundOf(t testing.TB, path, name string) time.Duration {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot(t), filepath.FromSlash(path)), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bound time.Duration
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != name || fd.Body == nil {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 || bound != 0 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "WithTimeout" {
				return true
			}
			// N * time.Second
			if b, ok := call.Args[1].(*ast.BinaryExpr); ok && b.Op == token.MUL {
				lit, ok1 := b.X.(*ast.BasicLit)
				unit, ok2 := b.Y.(*ast.SelectorExpr)
				if ok1 && ok2 && unit.Sel.Name == "Second" {
					if n, err := strconv.Atoi(lit.Value); err == nil {
						bound = time.Duration(n) * time.Second
					}
				}
			}
			return true
		})
	}
	if bound == 0 {
		t.Fatalf("%s: no context.WithTimeout(..., N*time.Second) in %s: the shutdown bound the grace periods cover cannot be read", path, name)
	}
	return bound
}

func services() []service {
	return []service{
		{
			Name: "auth",
			load: func(l config.Lookup) (serviceConfig, error) {
				c, err := authd.LoadConfig(l)
				return serviceConfig{c.HTTPAddr, c.MetricsAddr, c.ShutdownTimeout}, err
			},
			Defaulted: map[string]string{
				"ACCESS_TOKEN_TTL":          "5 minutes, simplejwt's default, which existing clients expect",
				"REFRESH_TOKEN_TTL":         "1 day, simplejwt's default",
				"SERVICE_TOKEN_TTL":         "5 minutes; the BFF caches and renews its service token by itself",
				"AUTH_RATE_LIMITS":          "the built-in per-address and per-email limits (ratelimit.DefaultRules)",
				"ARGON2_MEMORY_KIB":         "OWASP's Argon2id parameters; changing them affects new hashes only",
				"ARGON2_ITERATIONS":         "OWASP's Argon2id parameters",
				"ARGON2_PARALLELISM":        "OWASP's Argon2id parameters",
				"PASSWORD_HASH_CONCURRENCY": "0 = GOMAXPROCS, which the Go runtime takes from the container's CPU limit",
				"BLACKLIST_SWEEP_INTERVAL":  "10 minutes: expired refresh-token blacklist entries are purged by the application",
				"JWT_PREVIOUS_SIGNING_KEYS": "empty: no rotation under way; set during a key rotation (docs/security.md)",
				"PUBLIC_URL":                "empty: the listing's next link is relative, never built from Host; set it where clients need absolute links",
			},
		},
		{
			Name: "customer",
			load: func(l config.Lookup) (serviceConfig, error) {
				c, err := customerd.LoadConfig(l)
				return serviceConfig{c.HTTPAddr, c.MetricsAddr, c.ShutdownTimeout}, err
			},
			Defaulted: map[string]string{
				"AUTH_TIMEOUT":                 "1s per call to auth; the user fields degrade to null after it",
				"JWT_PREVIOUS_SIGNING_KEYS":    "empty: no rotation under way; set during a key rotation (docs/security.md)",
				"PUBLIC_URL":                   "empty: pagination links are relative (path and query), never built from Host",
				"SERVICE_TOKENS_WITHOUT_SCOPE": "deny outside development: a service token without a scope claim gets nothing; set allow while a Django auth service (no scopes) issues service tokens",
			},
		},
		{
			Name: "bff",
			load: func(l config.Lookup) (serviceConfig, error) {
				c, err := bffd.LoadConfig(l)
				return serviceConfig{c.HTTPAddr, c.MetricsAddr, c.ShutdownTimeout}, err
			},
			Defaulted: map[string]string{
				"CACHE_TTL":                 "60s for a merged view; changes invalidate it at once anyway",
				"AUTH_TIMEOUT":              "3s per call to auth, which covers an Argon2id hash at registration",
				"CUSTOMER_TIMEOUT":          "3s per call to the customer service",
				"REDIS_TIMEOUT":             "50ms: a slow cache is skipped (X-Cache: BYPASS), never waited for",
				"RECONCILE_INTERVAL":        "5s between passes of the saga reconciler",
				"STORE_TIMEOUT":             "2s per call to the BFF's own MongoDB (bff.DefaultStoreTimeout)",
				"SAGA_LEASE_TTL":            "derived from the timeouts (bff.DefaultLeaseTTL)",
				"SAGA_RETENTION":            "30 days: finished sagas are kept that long for support and audit, then deleted by the reconciler",
				"BFF_BENCH_FLOOR":           "off: the benchmark's floor endpoint (cmd/bench) is never served by a deployment",
				"STORE_SLOTS":               "store calls in flight per replica (bff.DefaultStoreSlots)",
				"STORE_WAIT":                "the bounded wait for a store slot before a 503 (bff.DefaultStoreWait)",
				"BFF_PUBLISH_DOCS":          "off outside development: the public BFF does not publish the internal API documents",
				"BFF_PREVIOUS_SECRETS":      "empty: no rotation of the BFF's server secret under way (docs/security.md)",
				"JWT_PREVIOUS_SIGNING_KEYS": "empty: no rotation under way; set during a key rotation (docs/security.md)",
				"TRUSTED_PROXIES":           "empty: clients reach the BFF directly here, so no X-Forwarded-For is believed; set it to the load balancer's or ingress's addresses when one fronts the BFF",
			},
		},
	}
}

// migrateTool is cmd/migrate, the one-shot migration compose can run. Its
// Config is in package main, which cannot be imported, so the keys it reads
// are taken from the source of its LoadConfig.
func migrateTool() (service, error) {
	keys, err := configKeysFromSource(filepath.Join("..", "cmd", "migrate", "config.go"))
	if err == nil { // reconcile's own settings (CUSTOMER_URL) are read in reconcile.go
		var more []string
		more, err = configKeysFromSource(filepath.Join("..", "cmd", "migrate", "reconcile.go"))
		keys = append(keys, more...)
	}
	return service{
		Name:   "migrate",
		static: keys,
		Defaulted: map[string]string{
			"AUTH_TIMEOUT":       "5s per call to auth",
			"MIGRATE_LOOKUPS":    "8 concurrent lookups of users in auth",
			"MIGRATE_BATCH_SIZE": "500 profiles per bulk write",
		},
	}, err
}

// configKeysFromSource returns the keys a LoadConfig reads through
// config.Reader: the literal first argument of every call of one of its
// methods in the file.
func configKeysFromSource(path string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	methods := []string{"String", "Secret", "Duration", "Int", "Bool", "URL", "List"}
	var keys []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		lit, isLit := call.Args[0].(*ast.BasicLit)
		if ok && isLit && lit.Kind == token.STRING && slices.Contains(methods, sel.Sel.Name) {
			if k, err := strconv.Unquote(lit.Value); err == nil && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		return true
	})
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: found no configuration keys", path)
	}
	sort.Strings(keys)
	return keys, nil
}

// read runs the service's LoadConfig over env with a recording lookup and
// returns the loaded config and every key it asked for, sorted.
func (s service) read(env map[string]string) (serviceConfig, []string, error) {
	var (
		mu   sync.Mutex
		keys []string
	)
	if s.load == nil {
		return serviceConfig{}, s.static, nil
	}
	lookup := func(k string) (string, bool) {
		mu.Lock()
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
		mu.Unlock()
		v, ok := env[k]
		return v, ok
	}
	cfg, err := s.load(lookup)
	sort.Strings(keys)
	return cfg, keys, err
}

// minimalEnv is the least a service needs to load its configuration: the
// values without a default.
func minimalEnv() map[string]string {
	return map[string]string{"JWT_SIGNING_KEY": fakeSecret("JWT_SIGNING_KEY")}
}

// defaults returns the service's configuration with nothing but minimalEnv set.
func (s service) defaults() (serviceConfig, error) {
	cfg, _, err := s.read(minimalEnv())
	return cfg, err
}

// fakeSecret is a test value for a secret: long and recognisable, never real.
func fakeSecret(name string) string {
	return "test-only-" + strings.ToLower(strings.ReplaceAll(name, "_", "-")) + "-0123456789abcdefghijklmnopqrstuvwxyz"
}

// otelKeys are the standard variables the OpenTelemetry Go SDK reads in
// internal/telemetry's setup (autoexport, resource.WithFromEnv, the default
// sampler, the batch span processor, the periodic metric reader). They are
// listed one by one, so a misspelt one is caught. OTEL_SERVICE_NAME and
// OTEL_PROPAGATORS are left out on purpose: telemetry.Setup sets the service
// name and the propagators in code, so setting them would only mislead.
var otelKeys = []string{
	"OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_COMPRESSION",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_CERTIFICATE",
	"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
	"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT",
}

// runtimeKeys are read by the Go runtime itself.
var runtimeKeys = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG"}

// checkEnv compares the environment a deployment gives a service with what
// the service reads, and returns every problem: a variable set that nothing
// reads (a typo silently falling back to a default), a variable read that is
// neither set nor deliberately defaulted, a deliberately defaulted one that is
// set after all, and a configuration the service refuses. where names the
// deployment file for the messages. wired are variables the deployment
// passes from an optional source that is absent here (set when the operator
// provides it): they count as set but are not given to the service.
func checkEnv(s service, where string, env map[string]string, wired ...string) []string {
	var problems []string
	_, read, err := s.read(env)
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s: %s refuses its configuration: %v", where, s.Name, err))
	}
	all := maps.Clone(env)
	for _, k := range wired {
		all[k] = ""
	}
	for _, k := range sortedKeys(all) {
		switch {
		case slices.Contains(read, k), slices.Contains(otelKeys, k), slices.Contains(runtimeKeys, k):
		case strings.HasPrefix(k, "OTEL_"):
			problems = append(problems, fmt.Sprintf("%s: %s sets %s, which is not one of the OpenTelemetry variables this code honours (misspelt?)", where, s.Name, k))
		default:
			problems = append(problems, fmt.Sprintf("%s: %s sets %s, which the service never reads (misspelt? removed?)", where, s.Name, k))
		}
	}
	for _, k := range read {
		_, set := env[k]
		set = set || slices.Contains(wired, k)
		reason, defaulted := s.Defaulted[k]
		switch {
		case set && defaulted:
			problems = append(problems, fmt.Sprintf("%s: %s sets %s, which the test lists as deliberately defaulted (%s): remove one of the two", where, s.Name, k, reason))
		case !set && !defaulted:
			problems = append(problems, fmt.Sprintf("%s: %s reads %s, which is neither set nor listed as deliberately defaulted", where, s.Name, k))
		}
	}
	for _, k := range sortedKeys(s.Defaulted) {
		if !slices.Contains(read, k) {
			problems = append(problems, fmt.Sprintf("%s: %s no longer reads %s: remove it from the deliberately defaulted list", where, s.Name, k))
		}
	}
	return problems
}
