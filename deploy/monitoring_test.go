package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// The monitoring files (deploy/observability): Prometheus's configuration
// for compose and its scrape configuration for Kubernetes, the alert rules
// and their unit tests, and Grafana's provisioning and dashboard.
const (
	rulesFile       = "observability/rules/platform.rules.yml"
	rulesTestFile   = "observability/rules/platform.rules.test.yml"
	promConfig      = "observability/prometheus.yml"
	promK8sConfig   = "observability/prometheus-kubernetes.yml"
	grafanaDir      = "observability/grafana"
	dashboardsDir   = "observability/grafana/dashboards"
	grafanaProvDir  = "observability/grafana/provisioning"
	grafanaDSFile   = "observability/grafana/provisioning/datasources/prometheus.yml"
	grafanaDashProv = "observability/grafana/provisioning/dashboards/customer-platform.yml"
)

// What the dashboard must show, by the series it reads: request rates and
// latency, the cache's hit ratio, the breakers, the sagas by state and
// needs_attention, and the change events' lag, parking and redelivery.
var dashboardMust = []string{
	"http_server_request_duration_seconds_count", "http_server_request_duration_seconds_bucket",
	"bff_cache_requests_total", "bff_breaker_state", "bff_saga_outcomes_total", "bff_reconciler_backlog",
	"bff_saga_needs_attention", "changefeed_consumer_lag", "changefeed_delivery_delay_seconds_bucket",
	"changefeed_events_parked_total", "changefeed_events_redelivered_total",
}

// What the alerts must cover, by alert name.
var alertsMust = []string{
	"SagaStuck", "SagaNeedsAttention", "CircuitBreakerOpen", "ChangeEventLag", "HighServerErrorRatio", "ReconcilerNotRunning",
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) []alertRule {
	t.Helper()
	var rf ruleFile
	if err := yaml.Unmarshal(readFile(t, filepath.Join(deployDir(t), rulesFile)), &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []alertRule
	for _, g := range rf.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return rules
}

// checkNames fails for each series an expression names that no service
// exports.
func checkNames(t *testing.T, where, expr string, exported map[string]bool) []string {
	t.Helper()
	names, err := promQLNames(expr)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return nil
	}
	if len(names) == 0 {
		t.Errorf("%s: %q selects no series", where, expr)
	}
	for _, n := range names {
		if !exported[n] {
			t.Errorf("%s: %q reads %s, which no service exports (see exportedMetrics)", where, expr, n)
		}
	}
	return names
}

// TestAlertRules: every alert reads only exported series, says how bad it
// is and what it means, the required ones exist, and the unit tests make
// each alert both fire and stay quiet.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	rules := loadRules(t)
	var alerts []string
	for _, r := range rules {
		where := rulesFile + " " + r.Alert
		if r.Alert == "" {
			t.Errorf("%s: a rule that is not an alert (%q): the file holds alerts only", rulesFile, r.Record)
			continue
		}
		if slices.Contains(alerts, r.Alert) {
			t.Errorf("%s: defined twice", where)
		}
		alerts = append(alerts, r.Alert)
		checkNames(t, where, r.Expr, exported)
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", where, s)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: want a summary and a description", where)
		}
	}
	for _, a := range alertsMust {
		if !slices.Contains(alerts, a) {
			t.Errorf("%s: no alert %s", rulesFile, a)
		}
	}

	// The unit tests: each alert fires in some case and is expected quiet in another.
	var tf struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name  string `yaml:"name"`
			Cases []struct {
				Alert string `yaml:"alertname"`
				Exp   []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(deployDir(t), rulesTestFile)), &tf); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if !slices.Equal(tf.RuleFiles, []string{filepath.Base(rulesFile)}) {
		t.Errorf("%s: rule_files %q, want [%s]", rulesTestFile, tf.RuleFiles, filepath.Base(rulesFile))
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, c := range tf.Tests {
		for _, k := range c.Cases {
			if !slices.Contains(alerts, k.Alert) {
				t.Errorf("%s: test %q checks %s, which the rules do not define", rulesTestFile, c.Name, k.Alert)
			}
			if len(k.Exp) > 0 {
				fires[k.Alert] = true
			} else {
				quiet[k.Alert] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("%s: %s needs a case where it fires (%v) and one where it stays quiet (%v)", rulesTestFile, a, fires[a], quiet[a])
		}
	}
}

// promtool returns the path of promtool, skipping the test without it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it): the alert rules, " +
			"their unit tests and the Prometheus configuration are not checked by Prometheus's own tool")
	}
	return p
}

func runPromtool(t *testing.T, bin, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestPromtool: Prometheus's own checks of the rules, their unit tests, the
// configurations, and of every query of the dashboard.
func TestPromtool(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	dir := deployDir(t)
	if out, err := runPromtool(t, bin, dir, "check", "rules", rulesFile); err != nil {
		t.Errorf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	if out, err := runPromtool(t, bin, filepath.Dir(filepath.Join(dir, rulesTestFile)), "test", "rules", filepath.Base(rulesTestFile)); err != nil {
		t.Errorf("promtool test rules %s: %v\n%s", rulesTestFile, err, out)
	}
	if out, err := runPromtool(t, bin, dir, "check", "config", promConfig); err != nil {
		t.Errorf("promtool check config %s: %v\n%s", promConfig, err, out)
	}
	out, err := runPromtool(t, bin, dir, "check", "config", promK8sConfig)
	switch {
	case err != nil && strings.Contains(out, "kubernetes_sd_configs not found"):
		// Debian's Prometheus is built without Kubernetes discovery; the
		// structure is checked by TestPrometheusKubernetesScrape.
		t.Logf("promtool check config %s: this promtool has no Kubernetes service discovery; not checked by it", promK8sConfig)
	case err != nil:
		t.Errorf("promtool check config %s: %v\n%s", promK8sConfig, err, out)
	}

	// The dashboard's queries, as recording rules of a scratch rule file.
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range dashboardQueries(t) {
		expr := grafanaIntervals.ReplaceAllString(q.expr, "5m")
		quotedExpr, _ := json.Marshal(expr)
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, quotedExpr)
	}
	scratch := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(scratch, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runPromtool(t, bin, dir, "check", "rules", scratch); err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}

type dashboardQuery struct {
	where, expr string
}

type dashboardPanel struct {
	ID         int              `json:"id"`
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource map[string]any   `json:"datasource"`
	GridPos    map[string]int   `json:"gridPos"`
	Panels     []dashboardPanel `json:"panels"`
	Targets    []struct {
		Datasource map[string]any `json:"datasource"`
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
	} `json:"targets"`
}

// dashboards returns every dashboard JSON of the provisioned directory.
func dashboards(t *testing.T) map[string][]dashboardPanel {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir(t), dashboardsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no dashboard (%v)", dashboardsDir, err)
	}
	out := map[string][]dashboardPanel{}
	for _, f := range files {
		var d struct {
			UID    string           `json:"uid"`
			Title  string           `json:"title"`
			Panels []dashboardPanel `json:"panels"`
		}
		dec := json.NewDecoder(bytes.NewReader(readFile(t, f)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: want a uid and a title", f)
		}
		var all []dashboardPanel
		var walk func([]dashboardPanel)
		walk = func(ps []dashboardPanel) {
			for _, p := range ps {
				all = append(all, p)
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		out[filepath.Base(f)] = all
	}
	return out
}

func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	var qs []dashboardQuery
	for file, panels := range dashboards(t) {
		for _, p := range panels {
			for _, tg := range p.Targets {
				qs = append(qs, dashboardQuery{fmt.Sprintf("%s panel %q query %s", file, p.Title, tg.RefID), tg.Expr})
			}
		}
	}
	return qs
}

// TestDashboard: every panel queries the provisioned Prometheus for series
// the services export, and the dashboard shows what operators need.
func TestDashboard(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	var ds struct {
		Datasources []struct {
			Name string `yaml:"name"`
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(deployDir(t), grafanaDSFile)), &ds); err != nil || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("%s: want one prometheus data source (%v)", grafanaDSFile, err)
	}
	uid := ds.Datasources[0].UID
	used := map[string]bool{}
	for file, panels := range dashboards(t) {
		ids := map[int]bool{}
		for _, p := range panels {
			where := fmt.Sprintf("%s panel %d %q", file, p.ID, p.Title)
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("%s: panel ids must be unique and non-zero", where)
			}
			ids[p.ID] = true
			if p.Title == "" || p.GridPos["w"] == 0 || p.GridPos["h"] == 0 {
				t.Errorf("%s: want a title and a gridPos", where)
			}
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no query", where)
			}
			if strAt(p.Datasource, "uid") != uid || strAt(p.Datasource, "type") != "prometheus" {
				t.Errorf("%s: data source %v, want the provisioned prometheus (uid %q)", where, p.Datasource, uid)
			}
			for _, tg := range p.Targets {
				if tg.Datasource != nil && strAt(tg.Datasource, "uid") != uid {
					t.Errorf("%s query %s: data source %v, want uid %q", where, tg.RefID, tg.Datasource, uid)
				}
				for _, n := range checkNames(t, where+" query "+tg.RefID, tg.Expr, exported) {
					used[n] = true
				}
			}
		}
	}
	for _, n := range dashboardMust {
		if !used[n] {
			t.Errorf("no dashboard panel reads %s", n)
		}
	}
}

// TestComposeObservability: the observability profile runs Prometheus with
// the repository's configuration and rules, scraping each service's metrics
// port under a job of its name, and Grafana with the data source and the
// dashboards provisioned; both only on 127.0.0.1.
func TestComposeObservability(t *testing.T) {
	t.Parallel()
	svcs := mapAt(loadCompose(t), "services")
	dir := deployDir(t)
	mounts := func(name string) map[string]string { // container path -> repository path
		m := map[string]string{}
		for _, v := range strList(valAt(svcs, name, "volumes")) {
			f := strings.Split(v, ":")
			if len(f) >= 2 && strings.HasPrefix(f[0], ".") {
				m[f[1]] = filepath.Join(dir, filepath.FromSlash(f[0]))
			}
		}
		return m
	}
	// resolve maps a container path to the repository file mounted there.
	resolve := func(m map[string]string, p string) string {
		for dst, src := range m {
			if p == dst {
				return src
			}
			if rel, ok := strings.CutPrefix(p, dst+"/"); ok {
				return filepath.Join(src, filepath.FromSlash(rel))
			}
		}
		return ""
	}
	for _, name := range []string{"prometheus", "grafana"} {
		s := mapAt(svcs, name)
		if s == nil {
			t.Fatalf("compose.yaml has no %s service", name)
		}
		if !slices.Equal(strList(s["profiles"]), []string{"observability"}) {
			t.Errorf("compose %s: profiles %q, want [observability] (up without the profile does not start it)", name, strList(s["profiles"]))
		}
		for _, p := range strList(s["ports"]) {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("compose %s: publishes %q beyond 127.0.0.1", name, p)
			}
		}
	}

	// Prometheus: its configuration is the repository's, its rule files too.
	pm := mounts("prometheus")
	var cfgPath string
	for _, a := range strList(valAt(svcs, "prometheus", "command")) {
		if p, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgPath = p
		}
	}
	if src := resolve(pm, cfgPath); src != filepath.Join(dir, filepath.FromSlash(promConfig)) {
		t.Fatalf("compose prometheus: --config.file=%q is not %s mounted (volumes %v)", cfgPath, promConfig, pm)
	}
	cfg := loadYAML(t, filepath.Join(dir, filepath.FromSlash(promConfig)))
	for _, rf := range strList(cfg["rule_files"]) {
		if src := resolve(pm, path.Join(path.Dir(cfgPath), rf)); src != filepath.Join(dir, filepath.FromSlash(rulesFile)) {
			t.Errorf("compose prometheus: rule file %q resolves to %q in the container, want %s", rf, src, rulesFile)
		}
	}
	if !slices.Contains(strList(cfg["rule_files"]), filepath.Base(filepath.Dir(rulesFile))+"/"+filepath.Base(rulesFile)) {
		t.Errorf("%s: rule_files %q does not load %s", promConfig, strList(cfg["rule_files"]), rulesFile)
	}
	jobs := map[string][]string{}
	for _, sc := range listAt(cfg, "scrape_configs") {
		for _, st := range listAt(sc, "static_configs") {
			jobs[strAt(sc, "job_name")] = append(jobs[strAt(sc, "job_name")], strList(valAt(st, "targets"))...)
		}
	}
	for _, s := range services() {
		def, err := s.defaults()
		if err != nil {
			t.Fatal(err)
		}
		metrics := checkAddrPort(t, "compose "+s.Name, "METRICS_ADDR", composeEnv(mapAt(svcs, s.Name)), def.MetricsAddr)
		if want := []string{s.Name + ":" + strconv.Itoa(metrics)}; !slices.Equal(jobs[s.Name], want) {
			t.Errorf("%s: job %s scrapes %q, want %q (the compose service's metrics port; the rules group by job)", promConfig, s.Name, jobs[s.Name], want)
		}
	}

	// Grafana: the provisioning directory, the data source at the Prometheus
	// service, and the dashboards where the provider reads them.
	gm := mounts("grafana")
	if src := resolve(gm, "/etc/grafana/provisioning/datasources/prometheus.yml"); src != filepath.Join(dir, filepath.FromSlash(grafanaDSFile)) {
		t.Errorf("compose grafana: %s is not mounted under /etc/grafana/provisioning (volumes %v)", grafanaDSFile, gm)
	}
	var ds struct {
		Datasources []struct {
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	_ = yaml.Unmarshal(readFile(t, filepath.Join(dir, grafanaDSFile)), &ds)
	promPort := 0
	for _, p := range strList(valAt(svcs, "prometheus", "ports")) {
		f := strings.Split(p, ":")
		promPort, _ = strconv.Atoi(f[len(f)-1])
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != fmt.Sprintf("http://prometheus:%d", promPort) {
		t.Errorf("%s: want the data source at http://prometheus:%d (the compose service)", grafanaDSFile, promPort)
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(dir, grafanaDashProv)), &prov); err != nil || len(prov.Providers) != 1 {
		t.Fatalf("%s: want one dashboard provider (%v)", grafanaDashProv, err)
	}
	if src := resolve(gm, prov.Providers[0].Options.Path); src != filepath.Join(dir, filepath.FromSlash(dashboardsDir)) {
		t.Errorf("%s: the provider reads %q, where compose mounts %q, not %s", grafanaDashProv, prov.Providers[0].Options.Path, src, dashboardsDir)
	}
	if home := composeEnv(mapAt(svcs, "grafana"))["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if _, err := os.Stat(resolve(gm, home)); err != nil {
			t.Errorf("compose grafana: the home dashboard %q is not a mounted file", home)
		}
	}
	if strAt(svcs, "grafana", "depends_on", "prometheus", "condition") == "" {
		t.Error("compose grafana: want depends_on prometheus")
	}
}

// TestPrometheusKubernetesScrape: the Kubernetes scrape configuration keeps
// the platform's annotated pods and names each job after its service, as
// the rules and the dashboard expect.
func TestPrometheusKubernetesScrape(t *testing.T) {
	t.Parallel()
	cfg := loadYAML(t, filepath.Join(deployDir(t), filepath.FromSlash(promK8sConfig)))
	scs := listAt(cfg, "scrape_configs")
	if len(scs) != 1 {
		t.Fatalf("%s: want one scrape config", promK8sConfig)
	}
	if !slices.Equal(strList(valAt(cfg, "rule_files")), []string{"rules/platform.rules.yml"}) {
		t.Errorf("%s: rule_files %q", promK8sConfig, strList(valAt(cfg, "rule_files")))
	}
	keeps := map[string]string{}
	var job string
	for _, rl := range listAt(scs[0], "relabel_configs") {
		src := strings.Join(strList(valAt(rl, "source_labels")), ";")
		switch {
		case strAt(rl, "action") == "keep":
			keeps[src] = strAt(rl, "regex")
		case strAt(rl, "target_label") == "job":
			job = src
		}
	}
	if job != "__meta_kubernetes_pod_label_app_kubernetes_io_name" {
		t.Errorf("%s: job comes from %q, want the pod label %s", promK8sConfig, job, appName)
	}
	if keeps["__meta_kubernetes_pod_label_app_kubernetes_io_part_of"] != "customer-platform" || keeps["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] != "true" {
		t.Errorf("%s: want to keep only pods labelled %s=customer-platform and annotated prometheus.io/scrape=true (keeps %v)", promK8sConfig, partOf, keeps)
	}
	re, err := regexp.Compile("^(?:" + keeps["__meta_kubernetes_pod_label_app_kubernetes_io_name"] + ")$")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range services() {
		if !re.MatchString(s.Name) {
			t.Errorf("%s: the pods of %s are not kept", promK8sConfig, s.Name)
		}
	}
}
