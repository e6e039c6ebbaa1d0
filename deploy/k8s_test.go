package deploy

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Who may call each internal API (NetworkPolicy), and who must be able to.
var (
	apiCallersAllowed = map[string][]string{
		"auth":     {"bff", "customer", "migrate"},
		"customer": {"bff", "migrate"}, // migrate: reconcile --repair deletes ghost profiles
	}
	apiCallersNeeded = map[string][]string{
		"auth":     {"bff", "customer"},
		"customer": {"bff"},
	}
)

const (
	platformImage = "customer-platform"
	partOf        = "app.kubernetes.io/part-of"
	appName       = "app.kubernetes.io/name"
)

func TestKubernetes(t *testing.T) {
	t.Parallel()
	img := builtImage(t)
	col := readCollector(t)
	template := secretTemplate(t)
	for _, r := range renderings(t) {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			secrets := r
			if strings.HasPrefix(r.name, "base") {
				// The base expects the Secret to exist: use the template's keys and placeholder values.
				secrets.objects = append(slices.Clone(r.objects), template)
			}
			checkWorkloadSecurity(t, r)
			for _, s := range services() {
				checkService(t, secrets, s, img, col)
			}
			checkCollector(t, r, col)
			for _, s := range services() {
				checkHPA(t, r, s.Name)
			}
			for name, allowed := range apiCallersAllowed {
				checkNetworkPolicy(t, r, name, allowed, apiCallersNeeded[name])
			}
		})
	}
}

// TestSameVariablesEverywhere: compose and every Kubernetes rendering give
// each service the same variables (values differ), so the two ways to run
// the platform cannot drift apart.
func TestSameVariablesEverywhere(t *testing.T) {
	t.Parallel()
	compose := mapAt(loadCompose(t), "services")
	template := secretTemplate(t)
	for _, r := range renderings(t) {
		if strings.HasPrefix(r.name, "base") {
			r.objects = append(slices.Clone(r.objects), template)
		}
		for _, s := range services() {
			d := findObject(r.objects, "Deployment", s.Name)
			if d == nil {
				continue // reported by TestKubernetes
			}
			env, optional, _ := containerEnv(r, podContainers(d)[0])
			var k8s, dc []string
			for k := range env {
				k8s = append(k8s, k)
			}
			k8s = append(k8s, optional...)
			for k := range composeEnv(mapAt(compose, s.Name)) {
				dc = append(dc, k)
			}
			isRuntime := func(k string) bool { return slices.Contains(runtimeKeys, k) }
			k8s = slices.DeleteFunc(k8s, isRuntime)
			dc = slices.DeleteFunc(dc, isRuntime)
			slices.Sort(k8s)
			slices.Sort(dc)
			for _, k := range dc {
				if !slices.Contains(k8s, k) {
					t.Errorf("%s: %s sets %s in compose.yaml but not in Kubernetes", r.name, s.Name, k)
				}
			}
			for _, k := range k8s {
				if !slices.Contains(dc, k) {
					t.Errorf("%s: %s sets %s in Kubernetes but not in compose.yaml", r.name, s.Name, k)
				}
			}
		}
	}
}

// secretTemplate is base/secret.template.yaml as a Secret object.
func secretTemplate(t *testing.T) map[string]any {
	t.Helper()
	docs, err := decodeAll(readFile(t, filepath.Join(deployDir(t), "k8s", "base", "secret.template.yaml")))
	if err != nil || len(docs) != 1 || strAt(docs[0], "kind") != "Secret" || strAt(docs[0], "metadata", "name") != "platform-secrets" {
		t.Fatalf("secret.template.yaml: want one Secret platform-secrets (%v)", err)
	}
	for _, k := range sortedKeys(mapAt(docs[0], "stringData")) {
		if v := strAt(docs[0], "stringData", k); !strings.Contains(v, "PLACEHOLDER") {
			t.Errorf("secret.template.yaml: %s = %q is not an obvious placeholder", k, v)
		}
	}
	return docs[0]
}

// TestSecretNotInBase: the template is never deployed by the base itself.
func TestSecretNotInBase(t *testing.T) {
	t.Parallel()
	objs, err := renderKustomization(filepath.Join(deployDir(t), "k8s", "base"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strAt(o, "kind") == "Secret" {
			t.Errorf("the base deploys Secret %s; secrets are created by the operator (secret.template.yaml)", strAt(o, "metadata", "name"))
		}
	}
}

// checkWorkloadSecurity: every container of every workload runs with the
// restricted Pod Security Standard's settings, and has requests and limits.
func checkWorkloadSecurity(t *testing.T, r rendering) {
	t.Helper()
	for _, o := range r.objects {
		spec := podSpec(o)
		if spec == nil {
			continue
		}
		id := r.name + ": " + strAt(o, "kind") + " " + strAt(o, "metadata", "name")
		for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
			if strAt(spec, k) == "true" {
				t.Errorf("%s: %s", id, k)
			}
		}
		pod := mapAt(spec, "securityContext")
		for _, c := range podContainers(o) {
			where := id + " container " + strAt(c, "name")
			sc := mapAt(c, "securityContext")
			eff := func(key ...string) string {
				if v := strAt(sc, key...); v != "" {
					return v
				}
				return strAt(pod, key...)
			}
			if eff("runAsNonRoot") != "true" {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			if eff("runAsUser") == "0" {
				t.Errorf("%s: runAsUser 0", where)
			}
			if strAt(sc, "readOnlyRootFilesystem") != "true" {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if strAt(sc, "allowPrivilegeEscalation") != "false" {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if strAt(sc, "privileged") == "true" {
				t.Errorf("%s: privileged", where)
			}
			if !slices.Contains(strList(valAt(sc, "capabilities", "drop")), "ALL") || len(listAt(sc, "capabilities", "add")) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none", where)
			}
			if eff("seccompProfile", "type") != "RuntimeDefault" {
				t.Errorf("%s: seccompProfile is not RuntimeDefault", where)
			}
			for _, res := range []string{"cpu", "memory"} {
				req, err1 := parseQuantity(strAt(c, "resources", "requests", res))
				lim, err2 := parseQuantity(strAt(c, "resources", "limits", res))
				switch {
				case err1 != nil || err2 != nil:
					t.Errorf("%s: %s request %q and limit %q must both be set", where, res, strAt(c, "resources", "requests", res), strAt(c, "resources", "limits", res))
				case req > lim:
					t.Errorf("%s: %s request above its limit", where, res)
				}
			}
		}
	}
}

// checkService checks one service's Deployment, container, Service, PDB and
// environment in a rendering.
func checkService(t *testing.T, r rendering, s service, img image, col collectorConfig) {
	t.Helper()
	where := r.name + ": " + s.Name
	d := findObject(r.objects, "Deployment", s.Name)
	if d == nil {
		t.Errorf("%s: no Deployment", where)
		return
	}
	def, err := s.defaults()
	if err != nil {
		t.Fatalf("%s defaults: %v", s.Name, err)
	}
	spec := podSpec(d)
	labels := mapAt(d, "spec", "template", "metadata", "labels")
	if !selects(mapAt(d, "spec", "selector"), labels) || strAt(labels, appName) != s.Name || strAt(labels, partOf) != "customer-platform" {
		t.Errorf("%s: pod labels %v, want %s=%s and %s=customer-platform matched by the selector", where, labels, appName, s.Name, partOf)
	}
	if strAt(spec, "automountServiceAccountToken") != "false" {
		t.Errorf("%s: automountServiceAccountToken must be false (the services do not call the Kubernetes API)", where)
	}
	if strAt(spec, "enableServiceLinks") != "false" {
		t.Errorf("%s: enableServiceLinks must be false, so the environment is exactly the manifest's", where)
	}
	cs := listAt(spec, "containers")
	if len(cs) != 1 || strAt(cs[0], "name") != s.Name {
		t.Errorf("%s: want one container named %s", where, s.Name)
		return
	}
	c := cs[0].(map[string]any)

	// The platform image, running this service's binary.
	if name, tag := splitImage(strAt(c, "image")); !strings.HasSuffix(name, platformImage) || tag == "" {
		t.Errorf("%s: image %q, want the tagged platform image", where, strAt(c, "image"))
	}
	if cmd := strList(c["command"]); len(cmd) != 1 || cmd[0] != img.path(s.Name) || !img.has(cmd[0]) {
		t.Errorf("%s: command %q, want [%q], a binary the Dockerfile builds", where, cmd, img.path(s.Name))
	}

	// Environment.
	env, optional, problems := containerEnv(r, c)
	for _, p := range problems {
		t.Errorf("%s: %s", where, p)
	}
	for _, p := range checkEnv(s, r.name, env, optional...) {
		t.Error(p)
	}
	checkK8sURLs(t, r, where, env, col)

	// Ports: named http and metrics, the code's defaults.
	ports := map[string]int{}
	for _, p := range listAt(c, "ports") {
		n, _ := intAt(p, "containerPort")
		ports[strAt(p, "name")] = n
	}
	api := checkAddrPort(t, where, "HTTP_ADDR", env, def.HTTPAddr)
	metrics := checkAddrPort(t, where, "METRICS_ADDR", env, def.MetricsAddr)
	if ports["http"] != api || ports["metrics"] != metrics {
		t.Errorf("%s: container ports %v, want http %d and metrics %d", where, ports, api, metrics)
	}
	portName := func(p any) string {
		if n, err := strconv.Atoi(scalar(p)); err == nil {
			for name, v := range ports {
				if v == n {
					return name
				}
			}
		}
		return scalar(p)
	}

	// Probes.
	for probe, want := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"} {
		p := mapAt(c, probe)
		if p == nil && probe == "startupProbe" {
			continue
		}
		if strAt(p, "httpGet", "path") != want || portName(valAt(p, "httpGet", "port")) != "http" {
			t.Errorf("%s: %s %v, want httpGet %s on the http port", where, probe, p, want)
		}
	}

	// Prometheus scraping of the metrics port.
	ann := mapAt(d, "spec", "template", "metadata", "annotations")
	if strAt(ann, "prometheus.io/scrape") != "true" || strAt(ann, "prometheus.io/port") != strconv.Itoa(metrics) || strAt(ann, "prometheus.io/path") != "/metrics" {
		t.Errorf("%s: prometheus.io annotations %v, want scrape true, port %d, path /metrics", where, ann, metrics)
	}

	// Graceful termination: preStop sleep, then SIGTERM and the drain, all
	// within the grace period.
	drain := def.ShutdownTimeout
	if v, ok := env["SHUTDOWN_TIMEOUT"]; ok {
		if drain, err = time.ParseDuration(v); err != nil {
			t.Errorf("%s: SHUTDOWN_TIMEOUT %q: %v", where, v, err)
		}
	}
	sleep, ok := intAt(c, "lifecycle", "preStop", "sleep", "seconds")
	if !ok || sleep <= 0 {
		t.Errorf("%s: want lifecycle.preStop.sleep.seconds (the image has no shell for an exec hook)", where)
	}
	grace, ok := intAt(spec, "terminationGracePeriodSeconds")
	if tail := shutdownTail(t); !ok || time.Duration(grace)*time.Second <= time.Duration(sleep)*time.Second+drain+tail {
		t.Errorf("%s: terminationGracePeriodSeconds %d, want more than preStop %ds + SHUTDOWN_TIMEOUT %s + closing the database client and flushing the telemetry %s", where, grace, sleep, drain, tail)
	}

	// The Go runtime's soft limit is below the container's hard one.
	if v, ok := env["GOMEMLIMIT"]; ok {
		soft, err1 := parseQuantity(strings.TrimSuffix(strings.TrimSuffix(v, "B"), "i") + map[bool]string{true: "i", false: ""}[strings.HasSuffix(v, "iB")])
		hard, err2 := parseQuantity(strAt(c, "resources", "limits", "memory"))
		if err1 != nil || err2 != nil || soft >= hard {
			t.Errorf("%s: GOMEMLIMIT %q must be below the memory limit %q", where, v, strAt(c, "resources", "limits", "memory"))
		}
	}

	// The Service in front of it.
	svc := findObject(r.objects, "Service", s.Name)
	if svc == nil {
		t.Errorf("%s: no Service", where)
	} else {
		if !selectsLabels(mapAt(svc, "spec", "selector"), labels) {
			t.Errorf("%s: the Service's selector does not match the pods", where)
		}
		sp := map[string]string{}
		for _, p := range listAt(svc, "spec", "ports") {
			sp[strAt(p, "port")] = portName(valAt(p, "targetPort"))
		}
		if sp[strconv.Itoa(api)] != "http" || sp[strconv.Itoa(metrics)] != "metrics" {
			t.Errorf("%s: Service ports %v, want %d -> http and %d -> metrics", where, sp, api, metrics)
		}
	}

	// A disruption budget that protects it without blocking drains.
	var pdb map[string]any
	for _, o := range r.objects {
		if strAt(o, "kind") == "PodDisruptionBudget" && selects(mapAt(o, "spec", "selector"), labels) {
			pdb = o
		}
	}
	replicas, _ := intAt(d, "spec", "replicas")
	if h := findObject(r.objects, "HorizontalPodAutoscaler", s.Name); h != nil {
		replicas, _ = intAt(h, "spec", "minReplicas")
	}
	if pdb != nil {
		for _, other := range services() {
			od := findObject(r.objects, "Deployment", other.Name)
			if other.Name != s.Name && od != nil && selects(mapAt(pdb, "spec", "selector"), mapAt(od, "spec", "template", "metadata", "labels")) {
				t.Errorf("%s: PodDisruptionBudget %s also selects %s's pods (one budget per service)", where, strAt(pdb, "metadata", "name"), other.Name)
			}
		}
	}
	switch {
	case pdb == nil:
		t.Errorf("%s: no PodDisruptionBudget selects its pods", where)
	case valAt(pdb, "spec", "maxUnavailable") != nil:
		if n, ok := intAt(pdb, "spec", "maxUnavailable"); ok && n < 1 {
			t.Errorf("%s: PodDisruptionBudget maxUnavailable %d blocks every node drain", where, n)
		}
	case valAt(pdb, "spec", "minAvailable") != nil:
		if n, ok := intAt(pdb, "spec", "minAvailable"); ok && n >= replicas {
			t.Errorf("%s: PodDisruptionBudget minAvailable %d with %d replicas blocks every node drain", where, n, replicas)
		}
	default:
		t.Errorf("%s: PodDisruptionBudget sets neither maxUnavailable nor minAvailable", where)
	}
}

// containerEnv resolves a container's environment: envFrom ConfigMaps and
// Secrets, then env entries (values and secret/config map keys). optional
// lists the variables wired to an optional key that is absent.
func containerEnv(r rendering, c map[string]any) (env map[string]string, optional, problems []string) {
	env = map[string]string{}
	data := func(kind, name string) (map[string]string, bool) {
		o := findObject(r.objects, kind, name)
		if o == nil {
			return nil, false
		}
		m := map[string]string{}
		for k, v := range mapAt(o, "data") {
			s := scalar(v)
			if kind == "Secret" {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					problems = append(problems, fmt.Sprintf("Secret %s: %s is not base64", name, k))
				}
				s = string(b)
			}
			m[k] = s
		}
		for k, v := range mapAt(o, "stringData") {
			m[k] = scalar(v)
		}
		return m, true
	}
	from := map[string]string{}
	for _, ef := range listAt(c, "envFrom") {
		kind, ref := "ConfigMap", mapAt(ef, "configMapRef")
		if ref == nil {
			kind, ref = "Secret", mapAt(ef, "secretRef")
		}
		m, ok := data(kind, strAt(ref, "name"))
		if !ok {
			if strAt(ref, "optional") != "true" {
				problems = append(problems, fmt.Sprintf("envFrom %s %s does not exist", kind, strAt(ref, "name")))
			}
			continue
		}
		for k, v := range m {
			if src, dup := from[k]; dup {
				problems = append(problems, fmt.Sprintf("%s is set by both %s and %s %s", k, src, kind, strAt(ref, "name")))
			}
			from[k] = kind + " " + strAt(ref, "name")
			env[k] = v
		}
	}
	seen := map[string]bool{}
	for _, e := range listAt(c, "env") {
		name := strAt(e, "name")
		if seen[name] {
			problems = append(problems, fmt.Sprintf("env %s is listed twice", name))
		}
		seen[name] = true
		if src, ok := from[name]; ok {
			problems = append(problems, fmt.Sprintf("env %s overrides the one from %s", name, src))
		}
		vf := mapAt(e, "valueFrom")
		if vf == nil {
			env[name] = strAt(e, "value")
			continue
		}
		kind, ref := "ConfigMap", mapAt(vf, "configMapKeyRef")
		if ref == nil {
			kind, ref = "Secret", mapAt(vf, "secretKeyRef")
		}
		if ref == nil {
			env[name] = "(from the downward API)"
			continue
		}
		m, ok := data(kind, strAt(ref, "name"))
		v, has := m[strAt(ref, "key")]
		switch {
		case ok && has:
			env[name] = v
		case strAt(ref, "optional") == "true":
			optional = append(optional, name)
		default:
			problems = append(problems, fmt.Sprintf("env %s: %s %s has no key %s", name, kind, strAt(ref, "name"), strAt(ref, "key")))
		}
	}
	return env, optional, problems
}

// checkK8sURLs: the addresses a service is given name Services of the
// rendering on the right ports.
func checkK8sURLs(t *testing.T, r rendering, where string, env map[string]string, col collectorConfig) {
	t.Helper()
	apiPorts := map[string]int{}
	for _, s := range services() {
		if d, err := s.defaults(); err == nil {
			apiPorts[s.Name], _ = port(d.HTTPAddr)
		}
	}
	servicePort := func(name string, p int) bool {
		for _, sp := range listAt(findObject(r.objects, "Service", name), "spec", "ports") {
			if n, _ := intAt(sp, "port"); n == p {
				return true
			}
		}
		return false
	}
	for _, key := range []string{"AUTH_URL", "CUSTOMER_URL"} {
		v, ok := env[key]
		if !ok {
			continue
		}
		want := strings.ToLower(strings.TrimSuffix(key, "_URL"))
		host, p, err := hostPort(v)
		if err != nil || host != want || p != apiPorts[want] || !servicePort(host, p) {
			t.Errorf("%s: %s=%q, want http://%s:%d (the Service %s)", where, key, v, want, apiPorts[want], want)
		}
	}
	if v, ok := env["OTEL_EXPORTER_OTLP_ENDPOINT"]; ok {
		host, p, err := hostPort(v)
		want := col.receiverPort(t, env["OTEL_EXPORTER_OTLP_PROTOCOL"])
		if err != nil || host != "otel-collector" || p != want || !servicePort(host, p) {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT=%q, want http://otel-collector:%d (the collector's OTLP receiver for protocol %q)", where, v, want, env["OTEL_EXPORTER_OTLP_PROTOCOL"])
		}
	}
	// Where the rendering runs its own databases, the URIs point at them.
	if sts := findObject(r.objects, "StatefulSet", "mongodb"); sts != nil {
		u, err := url.Parse(env["MONGODB_URI"])
		if err != nil {
			t.Errorf("%s: MONGODB_URI: %v", where, err)
		} else {
			args := strList(valAt(podContainers(sts)[0], "args"))
			i := slices.Index(args, "--replSet")
			pod, svcName, _ := strings.Cut(u.Hostname(), ".")
			if pod != "mongodb-0" || svcName != strAt(sts, "spec", "serviceName") || findObject(r.objects, "Service", svcName) == nil ||
				i < 0 || i+1 >= len(args) || u.Query().Get("replicaSet") != args[i+1] {
				t.Errorf("%s: MONGODB_URI=%q, want mongodb://mongodb-0.%s:27017/?replicaSet=<mongod --replSet>", where, env["MONGODB_URI"], strAt(sts, "spec", "serviceName"))
			}
		}
	}
	if findObject(r.objects, "Deployment", "redis") != nil {
		if host, p, err := hostPort(env["REDIS_URL"]); err != nil || host != "redis" || !servicePort("redis", p) {
			t.Errorf("%s: REDIS_URL=%q, want redis://redis:6379/<db>", where, env["REDIS_URL"])
		}
	}
}

// checkCollector: the collector runs otel-collector.yaml with its
// environment and serves OTLP behind the Service the services are given.
func checkCollector(t *testing.T, r rendering, col collectorConfig) {
	t.Helper()
	d := findObject(r.objects, "Deployment", "otel-collector")
	if d == nil {
		t.Errorf("%s: no Deployment otel-collector", r.name)
		return
	}
	c := podContainers(d)[0]
	var cfgPath string
	for _, a := range strList(c["args"]) {
		if p, ok := strings.CutPrefix(a, "--config="); ok {
			cfgPath = p
		}
	}
	var content string
	for _, m := range listAt(c, "volumeMounts") {
		if dir := strAt(m, "mountPath"); filepath.Dir(cfgPath) == dir {
			for _, v := range listAt(podSpec(d), "volumes") {
				if strAt(v, "name") == strAt(m, "name") {
					content = strAt(findObject(r.objects, "ConfigMap", strAt(v, "configMap", "name")), "data", filepath.Base(cfgPath))
				}
			}
		}
	}
	if content != string(readFile(t, filepath.Join(repoRoot(t), "otel-collector.yaml"))) {
		t.Errorf("%s: otel-collector: --config=%q is not the repository's otel-collector.yaml", r.name, cfgPath)
	}
	env, _, problems := containerEnv(r, c)
	for _, p := range problems {
		t.Errorf("%s: otel-collector: %s", r.name, p)
	}
	for _, v := range col.requiredEnv {
		if env[v] == "" {
			t.Errorf("%s: otel-collector: otel-collector.yaml needs ${env:%s}, which the Deployment does not set", r.name, v)
		}
	}
	host, p, err := hostPort("tcp://" + env["TRACE_BACKEND_ENDPOINT"])
	if err != nil {
		t.Errorf("%s: otel-collector: TRACE_BACKEND_ENDPOINT=%q, want host:port", r.name, env["TRACE_BACKEND_ENDPOINT"])
	} else if findObject(r.objects, "Deployment", "jaeger") != nil && (host != "jaeger" || p != 4317) {
		t.Errorf("%s: otel-collector: TRACE_BACKEND_ENDPOINT=%q, want the rendering's own jaeger:4317", r.name, env["TRACE_BACKEND_ENDPOINT"])
	}
	ports := map[string]int{}
	for _, cp := range listAt(c, "ports") {
		n, _ := intAt(cp, "containerPort")
		ports[strAt(cp, "name")] = n
	}
	grpc := col.receiverPort(t, "grpc")
	ok := false
	for _, sp := range listAt(findObject(r.objects, "Service", "otel-collector"), "spec", "ports") {
		n, _ := intAt(sp, "port")
		target := strAt(sp, "targetPort")
		if tp, named := ports[target]; named {
			target = strconv.Itoa(tp)
		}
		if n == grpc && target == strconv.Itoa(grpc) {
			ok = true
		}
	}
	if !ok {
		t.Errorf("%s: otel-collector: the Service does not expose the OTLP gRPC receiver's port %d", r.name, grpc)
	}
}

// checkHPA: every service has an autoscaler that scales its Deployment on
// CPU utilisation (which needs a CPU request), within bounds that let its
// disruption budget drain a node in the base (two replicas at least), and
// the Deployment leaves the replica count to it.
func checkHPA(t *testing.T, r rendering, name string) {
	t.Helper()
	where := r.name + ": " + name
	var h map[string]any
	for _, o := range r.objects {
		if strAt(o, "kind") != "HorizontalPodAutoscaler" || strAt(o, "spec", "scaleTargetRef", "name") != name {
			continue
		}
		if h != nil {
			t.Errorf("%s: two HorizontalPodAutoscalers scale it", where)
		}
		h = o
	}
	if h == nil {
		t.Errorf("%s: no HorizontalPodAutoscaler scales it", where)
		return
	}
	ref := mapAt(h, "spec", "scaleTargetRef")
	d := findObject(r.objects, "Deployment", name)
	if strAt(ref, "kind") != "Deployment" || strAt(ref, "apiVersion") != "apps/v1" || d == nil {
		t.Errorf("%s: the HorizontalPodAutoscaler scales %v, want the apps/v1 Deployment %s of the rendering", where, ref, name)
		return
	}
	if strAt(h, "apiVersion") != "autoscaling/v2" {
		t.Errorf("%s: HorizontalPodAutoscaler apiVersion %q, want autoscaling/v2", where, strAt(h, "apiVersion"))
	}
	lo, ok1 := intAt(h, "spec", "minReplicas")
	hi, ok2 := intAt(h, "spec", "maxReplicas")
	switch {
	case !ok1 || !ok2 || lo < 1 || hi < lo:
		t.Errorf("%s: HorizontalPodAutoscaler minReplicas %d maxReplicas %d", where, lo, hi)
	case strings.HasPrefix(r.name, "base") && lo < 2:
		t.Errorf("%s: HorizontalPodAutoscaler minReplicas %d; the base runs at least 2, so that a node drain (one pod at a time, PodDisruptionBudget) never leaves it without a ready replica", where, lo)
	}
	cpu := false
	for _, m := range listAt(h, "spec", "metrics") {
		if strAt(m, "type") == "Resource" && strAt(m, "resource", "name") == "cpu" && strAt(m, "resource", "target", "type") == "Utilization" {
			u, ok := intAt(m, "resource", "target", "averageUtilization")
			if !ok || u < 30 || u > 90 {
				t.Errorf("%s: the autoscaler's CPU target is %d %%, want 30-90 %% of the request", where, u)
			}
			cpu = true
		}
	}
	if !cpu {
		t.Errorf("%s: the autoscaler has no CPU utilisation target", where)
	}
	for _, c := range podContainers(d) {
		if strAt(c, "resources", "requests", "cpu") == "" {
			t.Errorf("%s: container %s has no CPU request, so the autoscaler's utilisation has no base", where, strAt(c, "name"))
		}
	}
	if w, ok := intAt(h, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds"); !ok || w < 60 {
		t.Errorf("%s: the autoscaler scales down after %ds of lower load; want a stabilization window of at least 60s (the default 300s or longer)", where, w)
	}
	if valAt(d, "spec", "replicas") != nil {
		t.Errorf("%s: the Deployment sets replicas (%s) although an autoscaler owns the count: every apply would reset a scaled-out Deployment", where, strAt(d, "spec", "replicas"))
	}
}

// checkNetworkPolicy: the policies selecting the service's pods let only the
// allowed platform pods reach its API port, and at least the needed ones.
func checkNetworkPolicy(t *testing.T, r rendering, name string, allowed, needed []string) {
	t.Helper()
	d := findObject(r.objects, "Deployment", name)
	if d == nil {
		return
	}
	labels := mapAt(d, "spec", "template", "metadata", "labels")
	apiPort := ""
	for _, p := range listAt(podContainers(d)[0], "ports") {
		if strAt(p, "name") == "http" {
			apiPort = strAt(p, "containerPort")
		}
	}
	coversAPI := func(rule any) bool {
		ps := listAt(rule, "ports")
		if len(ps) == 0 {
			return true
		}
		for _, p := range ps {
			if v := strAt(p, "port"); v == "http" || v == apiPort {
				return true
			}
		}
		return false
	}
	var policies int
	reached := map[string]bool{}
	for _, np := range r.objects {
		if strAt(np, "kind") != "NetworkPolicy" || !selectsLabels(mapAt(np, "spec", "podSelector", "matchLabels"), labels) {
			continue
		}
		policies++
		if !slices.Contains(strList(valAt(np, "spec", "policyTypes")), "Ingress") {
			t.Errorf("%s: %s: NetworkPolicy %s does not restrict ingress", r.name, name, strAt(np, "metadata", "name"))
		}
		for _, rule := range listAt(np, "spec", "ingress") {
			if !coversAPI(rule) {
				continue
			}
			peers := listAt(rule, "from")
			if len(peers) == 0 {
				t.Errorf("%s: %s: NetworkPolicy %s lets anyone reach the API port", r.name, name, strAt(np, "metadata", "name"))
			}
			for _, peer := range peers {
				names := peerApps(peer)
				if names == nil || !isSubset(names, allowed) {
					t.Errorf("%s: %s: NetworkPolicy %s lets %v reach the API port; only %q may", r.name, name, strAt(np, "metadata", "name"), peer, allowed)
				}
				for _, caller := range needed {
					cl := mapAt(findObject(r.objects, "Deployment", caller), "spec", "template", "metadata", "labels")
					if valAt(peer, "namespaceSelector") == nil && valAt(peer, "ipBlock") == nil && selects(mapAt(peer, "podSelector"), cl) {
						reached[caller] = true
					}
				}
			}
		}
	}
	if policies == 0 {
		t.Errorf("%s: %s: no NetworkPolicy selects its pods", r.name, name)
	}
	for _, caller := range needed {
		if !reached[caller] {
			t.Errorf("%s: %s: no NetworkPolicy rule lets %s reach the API port", r.name, name, caller)
		}
	}
}

// peerApps returns the app names a NetworkPolicy peer admits: a podSelector
// alone (same namespace) limited to the platform's named apps; nil when it
// admits anything wider.
func peerApps(peer any) []string {
	if valAt(peer, "namespaceSelector") != nil || valAt(peer, "ipBlock") != nil {
		return nil
	}
	sel := mapAt(peer, "podSelector")
	if strAt(sel, "matchLabels", partOf) != "customer-platform" {
		return nil
	}
	if n := strAt(sel, "matchLabels", appName); n != "" {
		return []string{n}
	}
	for _, e := range listAt(sel, "matchExpressions") {
		if strAt(e, "key") == appName && strAt(e, "operator") == "In" {
			return strList(valAt(e, "values"))
		}
	}
	return nil
}

func isSubset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// selects reports whether a label selector (matchLabels, matchExpressions
// with In/NotIn/Exists/DoesNotExist) matches labels. An empty selector
// matches everything.
func selects(sel map[string]any, labels map[string]any) bool {
	if sel == nil {
		return false
	}
	if !selectsLabels(mapAt(sel, "matchLabels"), labels) {
		return false
	}
	for _, e := range listAt(sel, "matchExpressions") {
		v, has := labels[strAt(e, "key")]
		vals := strList(valAt(e, "values"))
		switch strAt(e, "operator") {
		case "In":
			if !has || !slices.Contains(vals, scalar(v)) {
				return false
			}
		case "NotIn":
			if has && slices.Contains(vals, scalar(v)) {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func selectsLabels(match map[string]any, labels map[string]any) bool {
	for k, v := range match {
		if scalar(labels[k]) != scalar(v) {
			return false
		}
	}
	return true
}

// parseQuantity parses a Kubernetes quantity ("250m", "2", "128Mi", "1G").
func parseQuantity(q string) (float64, error) {
	if q == "" {
		return 0, fmt.Errorf("empty quantity")
	}
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if strings.HasSuffix(q, u.suffix) {
			q, mult = strings.TrimSuffix(q, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(q, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}
