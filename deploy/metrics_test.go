package deploy

import (
	"bufio"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/acme/customer-platform/internal/telemetry"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

// The names a PromQL expression of the dashboard or the alert rules may
// use: every series the services export, from two sources.
//
//   - The code: every OpenTelemetry instrument the repository creates
//     (found by parsing its Go files), created again here on the same
//     Prometheus exporter the services use (telemetry.Setup), recorded once
//     and scraped, so the names are the exporter's own translation (dots to
//     underscores, the unit's suffix, _total, _bucket/_sum/_count). An
//     instrument that has not been recorded yet is not on a service's
//     /metrics at all (a breaker that never moved, an event never parked),
//     so only the code can vouch for those.
//   - A running system (internal/testenv/systest: auth, customer and the
//     BFF with Redis) after a registration, a login and two reads: the
//     libraries' instruments (otelhttp's outbound calls), the Go runtime and
//     process collectors and target_info, as the services serve them.
//
// Plus what Prometheus itself adds to every target.
var prometheusSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"}

var (
	exportedOnce  sync.Once
	exportedNames map[string]bool
	exportedErr   error
)

// exportedMetrics returns every series name the services export. The
// running system is started once per test binary.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the running system that lists the exported metrics is not started")
	}
	exportedOnce.Do(func() {
		names := map[string]bool{}
		for _, n := range prometheusSeries {
			names[n] = true
		}
		code, err := codeMetricNames(repoRoot(t))
		if err != nil {
			exportedErr = err
			return
		}
		for n := range code {
			names[n] = true
		}
		for n := range liveMetricNames(t) {
			names[n] = true
		}
		exportedNames = names
	})
	if exportedErr != nil {
		t.Fatal(exportedErr)
	}
	if exportedNames == nil {
		t.Fatal("the exported metric names could not be collected (see the first test that failed)")
	}
	return exportedNames
}

// An instrument is one OpenTelemetry instrument the code creates.
type instrument struct {
	kind, name, unit string
	pos              string
}

// instrumentKinds are the metric.Meter methods that create an instrument.
var instrumentKinds = []string{
	"Int64Counter", "Float64Counter", "Int64UpDownCounter", "Float64UpDownCounter",
	"Int64Histogram", "Float64Histogram", "Int64Gauge", "Float64Gauge",
	"Int64ObservableCounter", "Float64ObservableCounter", "Int64ObservableUpDownCounter",
	"Float64ObservableUpDownCounter", "Int64ObservableGauge", "Float64ObservableGauge",
}

// codeInstruments parses every non-test Go file of the repository (deploy/
// aside) and returns the instruments it creates. A name or unit is a string
// literal, or a field of the range variable over a literal slice of structs
// (one instrument per element); anything else is an error, so an instrument
// can never be missed silently.
func codeInstruments(root string) ([]instrument, error) {
	var out []instrument
	var errs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor" || rel == "deploy") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !slices.Contains(instrumentKinds, sel.Sel.Name) {
					return true
				}
				pos := fset.Position(call.Pos())
				where := fmt.Sprintf("%s:%d", filepath.ToSlash(rel), pos.Line)
				var unitArg ast.Expr
				for _, a := range call.Args[1:] {
					if c, ok := a.(*ast.CallExpr); ok {
						if s, ok := c.Fun.(*ast.SelectorExpr); ok && s.Sel.Name == "WithUnit" && len(c.Args) == 1 {
							unitArg = c.Args[0]
						}
					}
				}
				names, err := stringValues(fn.Body, call.Args[0])
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %s name: %v", where, sel.Sel.Name, err))
					return true
				}
				units := make([]string, len(names))
				if unitArg != nil {
					if units, err = stringValues(fn.Body, unitArg); err != nil || len(units) != len(names) {
						errs = append(errs, fmt.Sprintf("%s: %s unit: %v", where, sel.Sel.Name, err))
						return true
					}
				}
				for i, name := range names {
					out = append(out, instrument{kind: sel.Sel.Name, name: name, unit: units[i], pos: where})
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("instruments whose name or unit cannot be read:\n%s", strings.Join(errs, "\n"))
	}
	return out, nil
}

// stringValues resolves e to its string values: a literal (one value), or
// v.field where v ranges over a literal slice of structs in body (one value
// per element).
func stringValues(body *ast.BlockStmt, e ast.Expr) ([]string, error) {
	if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
		s, err := strconv.Unquote(lit.Value)
		return []string{s}, err
	}
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return nil, fmt.Errorf("%T is neither a string literal nor a field of a range variable", e)
	}
	v, ok := sel.X.(*ast.Ident)
	if !ok {
		return nil, fmt.Errorf("%s is not a field of a range variable", sel.Sel.Name)
	}
	var values []string
	var err error
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		rs, ok := n.(*ast.RangeStmt)
		if !ok || found {
			return !found
		}
		if id, ok := rs.Value.(*ast.Ident); !ok || id.Name != v.Name {
			return true
		}
		found = true
		lit, ok := rs.X.(*ast.CompositeLit)
		arr, ok2 := lit.Type.(*ast.ArrayType)
		if !ok || !ok2 {
			err = fmt.Errorf("%s ranges over something else than a literal slice", v.Name)
			return false
		}
		st, ok := arr.Elt.(*ast.StructType)
		if !ok {
			err = fmt.Errorf("%s ranges over a slice of a named type", v.Name)
			return false
		}
		index, i := -1, 0
		for _, f := range st.Fields.List {
			for _, n := range f.Names {
				if n.Name == sel.Sel.Name {
					index = i
				}
				i++
			}
		}
		for _, el := range lit.Elts {
			c, ok := el.(*ast.CompositeLit)
			if !ok {
				err = fmt.Errorf("an element of %s's slice is not a literal", v.Name)
				return false
			}
			var x ast.Expr
			for j, f := range c.Elts {
				if kv, ok := f.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == sel.Sel.Name {
						x = kv.Value
					}
				} else if j == index {
					x = f
				}
			}
			l, ok := x.(*ast.BasicLit)
			if !ok || l.Kind != token.STRING {
				err = fmt.Errorf("%s.%s is not a string literal in every element", v.Name, sel.Sel.Name)
				return false
			}
			s, _ := strconv.Unquote(l.Value)
			values = append(values, s)
		}
		return false
	})
	if !found && err == nil {
		err = fmt.Errorf("no range over a literal slice binds %s", v.Name)
	}
	return values, err
}

// codeMetricNames creates every instrument of the code on the services'
// Prometheus exporter, records it once, and returns the series names the
// exporter serves for them (without the runtime's and the process's).
func codeMetricNames(root string) (map[string]bool, error) {
	ins, err := codeInstruments(root)
	if err != nil {
		return nil, err
	}
	if len(ins) < 10 {
		return nil, fmt.Errorf("only %d instruments found in the code; the scan is broken", len(ins))
	}
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: "scan", Lookup: func(string) (string, bool) { return "", false }})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tel.Shutdown(ctx) }()
	base, err := scrapeHandler(tel.Metrics)
	if err != nil {
		return nil, err
	}
	for i, in := range ins {
		// A meter of its own per instrument: two packages may create the
		// same name (each replica's consumer, say).
		m := tel.Meter.Meter(fmt.Sprintf("scan/%d", i))
		var err error
		switch in.kind {
		case "Int64Counter":
			var c metric.Int64Counter
			if c, err = m.Int64Counter(in.name, metric.WithUnit(in.unit)); err == nil {
				c.Add(ctx, 1)
			}
		case "Float64Counter":
			var c metric.Float64Counter
			if c, err = m.Float64Counter(in.name, metric.WithUnit(in.unit)); err == nil {
				c.Add(ctx, 1)
			}
		case "Int64UpDownCounter":
			var c metric.Int64UpDownCounter
			if c, err = m.Int64UpDownCounter(in.name, metric.WithUnit(in.unit)); err == nil {
				c.Add(ctx, 1)
			}
		case "Float64UpDownCounter":
			var c metric.Float64UpDownCounter
			if c, err = m.Float64UpDownCounter(in.name, metric.WithUnit(in.unit)); err == nil {
				c.Add(ctx, 1)
			}
		case "Int64Histogram":
			var h metric.Int64Histogram
			if h, err = m.Int64Histogram(in.name, metric.WithUnit(in.unit)); err == nil {
				h.Record(ctx, 1)
			}
		case "Float64Histogram":
			var h metric.Float64Histogram
			if h, err = m.Float64Histogram(in.name, metric.WithUnit(in.unit)); err == nil {
				h.Record(ctx, 1)
			}
		case "Int64Gauge":
			var g metric.Int64Gauge
			if g, err = m.Int64Gauge(in.name, metric.WithUnit(in.unit)); err == nil {
				g.Record(ctx, 1)
			}
		case "Float64Gauge":
			var g metric.Float64Gauge
			if g, err = m.Float64Gauge(in.name, metric.WithUnit(in.unit)); err == nil {
				g.Record(ctx, 1)
			}
		case "Int64ObservableCounter":
			_, err = m.Int64ObservableCounter(in.name, metric.WithUnit(in.unit), metric.WithInt64Callback(observeInt))
		case "Float64ObservableCounter":
			_, err = m.Float64ObservableCounter(in.name, metric.WithUnit(in.unit), metric.WithFloat64Callback(observeFloat))
		case "Int64ObservableUpDownCounter":
			_, err = m.Int64ObservableUpDownCounter(in.name, metric.WithUnit(in.unit), metric.WithInt64Callback(observeInt))
		case "Float64ObservableUpDownCounter":
			_, err = m.Float64ObservableUpDownCounter(in.name, metric.WithUnit(in.unit), metric.WithFloat64Callback(observeFloat))
		case "Int64ObservableGauge":
			_, err = m.Int64ObservableGauge(in.name, metric.WithUnit(in.unit), metric.WithInt64Callback(observeInt))
		case "Float64ObservableGauge":
			_, err = m.Float64ObservableGauge(in.name, metric.WithUnit(in.unit), metric.WithFloat64Callback(observeFloat))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s %q: %w", in.pos, in.kind, in.name, err)
		}
	}
	all, err := scrapeHandler(tel.Metrics)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for n := range all {
		if !base[n] {
			out[n] = true
		}
	}
	return out, nil
}

func observeInt(_ context.Context, o metric.Int64Observer) error     { o.Observe(1); return nil }
func observeFloat(_ context.Context, o metric.Float64Observer) error { o.Observe(1); return nil }

func scrapeHandler(h http.Handler) (map[string]bool, error) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d", rec.Code)
	}
	return seriesNames(rec.Body)
}

// seriesNames returns the series names of a Prometheus text exposition.
func seriesNames(r io.Reader) (map[string]bool, error) {
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names, sc.Err()
}

// liveMetricNames starts the system, drives a little traffic through it
// and scrapes every service's /metrics.
func liveMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	sys := systest.Start(t, systest.Options{Redis: true})
	bff := sys.URL("bff") + "/api/bff/"
	const pw = "Tr1cky-Wombat-Lantern"
	email := fmt.Sprintf("metrics-%d@example.com", time.Now().UnixNano())
	reg := testenv.Call(t, nil, http.MethodPost, bff+"register/", map[string]any{
		"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15035550100",
		"password1": pw, "password2": pw,
		"street_address": "123 Main St", "city": "Portland", "state": "OR", "postal_code": "97201",
	}, nil)
	if reg.Status != http.StatusCreated {
		t.Fatalf("register: %s", reg)
	}
	login := testenv.Call(t, nil, http.MethodPost, bff+"login/", map[string]any{"email": email, "password": pw}, nil)
	if login.Status != http.StatusOK {
		t.Fatalf("login: %s", login)
	}
	var body struct {
		Tokens struct{ Access string } `json:"tokens"`
		Access string                  `json:"access"`
	}
	login.JSON(t, &body)
	access := body.Tokens.Access
	if access == "" {
		access = body.Access
	}
	for range 2 {
		if r := testenv.Call(t, nil, http.MethodGet, bff+"me/", nil, testenv.Bearer(access)); r.Status != http.StatusOK {
			t.Fatalf("me: %s", r)
		}
	}
	names := map[string]bool{}
	scrape := func() {
		for _, svc := range []string{"auth", "customer", "bff"} {
			in := sys.Service(svc)
			resp, err := http.Get(in.MetricsURL + "/metrics")
			if err != nil {
				t.Fatalf("%s /metrics: %v", svc, err)
			}
			got, err := seriesNames(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatalf("%s /metrics: %v", svc, err)
			}
			for n := range got {
				names[n] = true
			}
		}
	}
	// The change events of the registration reach the BFF's consumer.
	testenv.Eventually(t, 20*time.Second, testenv.Holds("the BFF has handled a change event", func() bool {
		scrape()
		return names["changefeed_delivery_delay_seconds_count"]
	}))
	return names
}

// promQLNames returns the metric names an expression selects. It removes
// what cannot be a metric name (strings, label matchers, ranges, the label
// lists of by/without/on/ignoring/group_left/group_right, numbers and
// durations, functions and keywords) and keeps the identifiers left.
// Grafana's interval variables ($__rate_interval, $__interval, $__range)
// may stand for a duration.
func promQLNames(expr string) ([]string, error) {
	s := grafanaIntervals.ReplaceAllString(expr, "5m")
	if strings.Contains(s, "$") {
		// Template variables only inside label matchers' strings.
		if strings.Contains(quoted.ReplaceAllString(s, `""`), "$") {
			return nil, fmt.Errorf("%q: a template variable outside a label matcher's value", expr)
		}
	}
	s = quoted.ReplaceAllString(s, " ")
	for _, re := range []*regexp.Regexp{braces, brackets, grouping} {
		s = re.ReplaceAllString(s, " ")
	}
	if strings.ContainsAny(s, "{}[]\"'`") {
		return nil, fmt.Errorf("%q: unbalanced braces, brackets or quotes", expr)
	}
	var names []string
	for _, m := range promToken.FindAllStringSubmatchIndex(s, -1) {
		if m[2] >= 0 { // a number or a duration
			continue
		}
		id := s[m[4]:m[5]]
		rest := strings.TrimLeft(s[m[5]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promKeywords[strings.ToLower(id)] {
			continue
		}
		if !slices.Contains(names, id) {
			names = append(names, id)
		}
	}
	return names, nil
}

var (
	grafanaIntervals = regexp.MustCompile(`\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}`)
	quoted           = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	braces           = regexp.MustCompile(`\{[^{}]*\}`)
	brackets         = regexp.MustCompile(`\[[^\[\]]*\]`)
	grouping         = regexp.MustCompile(`(?i)\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promToken        = regexp.MustCompile(`(\d[0-9a-zA-Z_.]*)|([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	promKeywords     = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true,
	}
)

func TestPromQLNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`up`: {"up"},
		`sum by (job, le) (rate(http_server_request_duration_seconds_bucket{job="bff", http_route=~"/api/.+"}[$__rate_interval]))`: {"http_server_request_duration_seconds_bucket"},
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 0.5 and on() max(b) offset 1h > 2e3`:                         {"a_bucket", "b"},
		`(sum(increase(x_total[15m])) or vector(0)) == 0 and on () max(y) > 900`:                                                   {"x_total", "y"},
		`max_over_time(g{instance="$instance"}[1h:5m]) / ignoring(group) group_left sum without (pod) (h)`:                         {"g", "h"},
		`label_replace(m, "dst", "$1", "src", "(.*)")`:                                                                             {"m"},
		`absent(bff_reconciler_backlog)`: {"bff_reconciler_backlog"},
	} {
		got, err := promQLNames(expr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("promQLNames(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	for _, bad := range []string{`x{job="a"`, `x{job=$job}`, `rate(x[5m)`} {
		if _, err := promQLNames(bad); err == nil {
			t.Errorf("promQLNames(%q): no error", bad)
		}
	}
}
