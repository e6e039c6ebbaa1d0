package deploy

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// interpolation is one ${...} of the compose file.
var interpRE = regexp.MustCompile(`\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|[A-Za-z_][A-Za-z0-9_]*|\{[^}]*\})`)

// interpolate substitutes ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?error} and ${NAME?error} as Compose does, with vars as the .env
// file. It reports every variable used, and every failure: a required one
// unset, an unset one without a default, and the unbraced $NAME form.
func interpolate(s string, vars map[string]string, used map[string]string) (string, []error) {
	var errs []error
	out := interpRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpRE.FindStringSubmatch(m)
		if sub[1] == "$" {
			return "$"
		}
		name, op, arg := sub[2], sub[3], sub[4]
		if name == "" {
			errs = append(errs, fmt.Errorf("%q: write variables as ${NAME}", m))
			return ""
		}
		used[name] = op
		v, set := vars[name]
		switch op {
		case ":-":
			if v == "" {
				return arg
			}
		case "-":
			if !set {
				return arg
			}
		case ":?":
			if v == "" {
				errs = append(errs, fmt.Errorf("%s is required: %s", name, arg))
			}
		case "?":
			if !set {
				errs = append(errs, fmt.Errorf("%s is required: %s", name, arg))
			}
		default:
			if !set {
				errs = append(errs, fmt.Errorf("%s is not set and has no default", name))
			}
		}
		return v
	})
	return out, errs
}

// interpolateAll interpolates every string of a decoded YAML value.
func interpolateAll(v any, vars map[string]string, used map[string]string) (any, []error) {
	var errs []error
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			s, e := interpolate(x, vars, used)
			errs = append(errs, e...)
			return s
		case map[string]any:
			m := make(map[string]any, len(x))
			for k, e := range x {
				m[k] = walk(e)
			}
			return m
		case []any:
			l := make([]any, len(x))
			for i, e := range x {
				l[i] = walk(e)
			}
			return l
		}
		return v
	}
	return walk(v), errs
}

// composeEnvExample is deploy/.env.example.
func composeEnvExample(t *testing.T) map[string]string {
	t.Helper()
	vars, err := parseEnvFile(readFile(t, filepath.Join(deployDir(t), ".env.example")))
	if err != nil {
		t.Fatalf(".env.example: %v", err)
	}
	return vars
}

// loadCompose returns compose.yaml interpolated with .env.example whose
// empty secrets are filled with test values, as an operator's .env would be.
func loadCompose(t *testing.T) map[string]any {
	t.Helper()
	raw := loadYAML(t, filepath.Join(deployDir(t), "compose.yaml"))
	vars := composeEnvExample(t)
	used := map[string]string{}
	interpolateAll(raw, vars, used)
	for k, op := range used {
		if (op == ":?" || op == "?") && vars[k] == "" {
			vars[k] = fakeSecret(k)
		}
	}
	doc, errs := interpolateAll(raw, vars, map[string]string{})
	for _, err := range errs {
		t.Errorf("compose.yaml with a filled-in .env: %v", err)
	}
	return doc.(map[string]any)
}

func looksSecret(name string) bool {
	for _, w := range []string{"SECRET", "KEY", "PASSWORD", "TOKEN"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// composeEnv returns a compose service's environment (map or KEY=VALUE list form).
func composeEnv(svc map[string]any) map[string]string {
	env := map[string]string{}
	switch e := svc["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			env[k] = scalar(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(scalar(kv), "=")
			env[k] = v
		}
	}
	return env
}

// TestComposeSecretsAndVariables: every ${VAR} of compose.yaml is explained
// in .env.example and every line there is used; the example commits no
// secret, and compose refuses to start until the operator fills them in.
func TestComposeSecretsAndVariables(t *testing.T) {
	t.Parallel()
	raw := loadYAML(t, filepath.Join(deployDir(t), "compose.yaml"))
	example := composeEnvExample(t)

	used := map[string]string{}
	_, errs := interpolateAll(raw, example, used)
	var refused []string
	for _, err := range errs {
		msg := err.Error()
		name, _, _ := strings.Cut(msg, " ")
		if strings.Contains(msg, " is required: ") {
			refused = append(refused, name)
			continue
		}
		t.Errorf("compose.yaml with .env.example: %v", err)
	}
	slices.Sort(refused)
	refused = slices.Compact(refused)

	for _, name := range sortedKeys(used) {
		if _, ok := example[name]; !ok {
			t.Errorf("compose.yaml uses ${%s}, which .env.example does not list", name)
		}
		if op := used[name]; (op == ":?" || op == "?") && example[name] != "" {
			t.Errorf(".env.example gives the required secret %s a value; leave it empty so a copied example cannot run", name)
		}
	}
	for _, name := range sortedKeys(example) {
		if _, ok := used[name]; !ok {
			t.Errorf(".env.example lists %s, which compose.yaml never uses", name)
		}
		if looksSecret(name) && example[name] != "" {
			t.Errorf(".env.example commits a value for %s; secrets must be empty there", name)
		}
	}
	if len(refused) == 0 {
		t.Error("compose.yaml starts with .env.example as it is: the secrets must be required (${NAME:?message})")
	}
	for _, name := range refused {
		if !looksSecret(name) {
			t.Errorf("compose.yaml requires %s, which is not a secret: give it a default", name)
		}
	}
	// The secrets every service needs are among the refused ones, i.e. none
	// has a default that would run the system with a public value.
	for _, name := range []string{"JWT_SIGNING_KEY"} {
		if !slices.Contains(refused, name) {
			t.Errorf("compose.yaml has a default for %s; it must be required", name)
		}
	}
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	doc := loadCompose(t)
	img := builtImage(t)
	svcs := mapAt(doc, "services")
	collector := readCollector(t)

	for _, name := range []string{"mongodb", "redis", "otel-collector", "jaeger"} {
		if svcs[name] == nil {
			t.Errorf("compose.yaml has no %s service", name)
		}
	}
	for _, name := range sortedKeys(svcs) {
		image := strAt(svcs[name], "image")
		if image == "" || !strings.Contains(image, ":") || strings.HasSuffix(image, ":latest") {
			t.Errorf("compose service %s: image %q, want a pinned tag", name, image)
		}
	}

	var ourImage string
	envs := map[string]map[string]string{}
	for _, s := range services() {
		svc := mapAt(svcs, s.Name)
		if svc == nil {
			t.Errorf("compose.yaml has no %s service", s.Name)
			continue
		}
		where := "compose.yaml " + s.Name
		env := composeEnv(svc)
		envs[s.Name] = env
		for _, p := range checkEnv(s, "compose.yaml", env) {
			t.Error(p)
		}

		// One image, built from the repository with deploy/Dockerfile.
		if ourImage == "" {
			ourImage = strAt(svc, "image")
		} else if strAt(svc, "image") != ourImage {
			t.Errorf("%s: image %q, want the platform image %q", where, strAt(svc, "image"), ourImage)
		}
		ctx := filepath.Join(deployDir(t), filepath.FromSlash(strAt(svc, "build", "context")))
		if ctx != repoRoot(t) || strAt(svc, "build", "dockerfile") != "deploy/Dockerfile" {
			t.Errorf("%s: build %v, want context .. and dockerfile deploy/Dockerfile", where, valAt(svc, "build"))
		}
		cmd := strList(svc["command"])
		if len(cmd) != 1 || cmd[0] != img.path(s.Name) || !img.has(cmd[0]) {
			t.Errorf("%s: command %q, want [%q], a binary the Dockerfile builds", where, cmd, img.path(s.Name))
		}

		// Ports agree with the code's defaults.
		def, err := s.defaults()
		if err != nil {
			t.Fatalf("%s defaults: %v", s.Name, err)
		}
		api := checkAddrPort(t, where, "HTTP_ADDR", env, def.HTTPAddr)
		metrics := checkAddrPort(t, where, "METRICS_ADDR", env, def.MetricsAddr)
		published := map[int]string{}
		for _, p := range strList(svc["ports"]) {
			f := strings.Split(p, ":")
			var cport int
			fmt.Sscan(f[len(f)-1], &cport)
			published[cport] = p
		}
		if published[api] == "" {
			t.Errorf("%s: API port %d is not published", where, api)
		}
		if p := published[metrics]; p == "" || !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("%s: metrics port %d published as %q, want on 127.0.0.1 only", where, metrics, p)
		}
		for cport, p := range published {
			if cport != api && cport != metrics {
				t.Errorf("%s: publishes %q, which is neither its API nor its metrics port", where, p)
			}
		}

		// Health: the image's probe on the service's own /readyz.
		wantTest := []string{"CMD", img.path("healthcheck"), fmt.Sprintf("http://127.0.0.1:%d/readyz", api)}
		if got := strList(valAt(svc, "healthcheck", "test")); !slices.Equal(got, wantTest) || !img.has(wantTest[1]) {
			t.Errorf("%s: healthcheck %q, want %q", where, got, wantTest)
		}

		// Shutdown: Docker must wait longer than the drain.
		drain := def.ShutdownTimeout
		if v, ok := env["SHUTDOWN_TIMEOUT"]; ok {
			if drain, err = time.ParseDuration(v); err != nil {
				t.Errorf("%s: SHUTDOWN_TIMEOUT %q: %v", where, v, err)
			}
		}
		grace, err := time.ParseDuration(strAt(svc, "stop_grace_period"))
		if tail := shutdownTail(t); err != nil || grace <= drain+tail {
			t.Errorf("%s: stop_grace_period %q, want longer than SHUTDOWN_TIMEOUT %s + closing the database client and flushing the telemetry %s (Docker kills after it)", where, strAt(svc, "stop_grace_period"), drain, tail)
		}

		// Hardening.
		if strAt(svc, "read_only") != "true" || !slices.Contains(strList(svc["cap_drop"]), "ALL") || !slices.Contains(strList(svc["security_opt"]), "no-new-privileges:true") {
			t.Errorf("%s: want read_only: true, cap_drop: [ALL] and security_opt: [no-new-privileges:true]", where)
		}

		// Start order: after the databases are healthy.
		for _, dep := range []string{"mongodb", "redis"} {
			if c := strAt(svc, "depends_on", dep, "condition"); c != "service_healthy" {
				t.Errorf("%s: depends_on %s condition %q, want service_healthy", where, dep, c)
			}
		}
		checkComposeURLs(t, where, svcs, svc, env, collector)
	}

	// depends_on is well formed and waits for health only where there is a health check.
	for _, name := range sortedKeys(svcs) {
		for _, dep := range sortedKeys(mapAt(svcs, name, "depends_on")) {
			c := strAt(svcs, name, "depends_on", dep, "condition")
			switch {
			case svcs[dep] == nil:
				t.Errorf("compose service %s depends on %s, which does not exist", name, dep)
			case c == "service_healthy" && valAt(svcs, dep, "healthcheck") == nil:
				t.Errorf("compose service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			case c != "service_healthy" && c != "service_started" && c != "service_completed_successfully":
				t.Errorf("compose service %s: depends_on %s condition %q", name, dep, c)
			}
		}
	}

	// The services share one signing key, and the BFF's and the customer
	// service's service clients are ones auth knows.
	if envs["auth"] != nil && envs["customer"] != nil && envs["auth"]["JWT_SIGNING_KEY"] != envs["customer"]["JWT_SIGNING_KEY"] {
		t.Error("compose.yaml: auth and customer get different JWT_SIGNING_KEYs")
	}
	if bff := envs["bff"]; bff != nil {
		if bff["JWT_SIGNING_KEY"] != envs["auth"]["JWT_SIGNING_KEY"] {
			t.Error("compose.yaml: auth and bff get different JWT_SIGNING_KEYs")
		}
		pair := bff["BFF_SERVICE_CLIENT_ID"] + ":" + bff["BFF_SERVICE_CLIENT_SECRET"]
		if !slices.Contains(strings.Split(envs["auth"]["AUTH_SERVICE_CLIENTS"], ","), pair) {
			t.Errorf("compose.yaml: auth's AUTH_SERVICE_CLIENTS does not hold the BFF's client %q", bff["BFF_SERVICE_CLIENT_ID"])
		}
	}
	if c := envs["customer"]; c != nil && envs["auth"] != nil {
		pair := c["CUSTOMER_SERVICE_CLIENT_ID"] + ":" + c["CUSTOMER_SERVICE_CLIENT_SECRET"]
		if !slices.Contains(strings.Split(envs["auth"]["AUTH_SERVICE_CLIENTS"], ","), pair) {
			t.Errorf("compose.yaml: auth's AUTH_SERVICE_CLIENTS does not hold the customer service's client %q", c["CUSTOMER_SERVICE_CLIENT_ID"])
		}
	}
}

// checkAddrPort checks that env[key] (or, unset, the code's default) listens
// on every interface on the code's default port, and returns that port.
func checkAddrPort(t *testing.T, where, key string, env map[string]string, def string) int {
	t.Helper()
	want, err := port(def)
	if err != nil {
		t.Fatalf("%s: the code's default %s %q: %v", where, key, def, err)
	}
	addr, ok := env[key]
	if !ok {
		addr = def
	}
	host, _, _ := strings.Cut(addr, ":")
	got, err := port(addr)
	switch {
	case err != nil:
		t.Errorf("%s: %s=%q: %v", where, key, addr, err)
	case got != want:
		t.Errorf("%s: %s=%q, want the code's default port %d (the docs and every other file use it)", where, key, addr, want)
	case host != "" && host != "0.0.0.0" && host != "[::]":
		t.Errorf("%s: %s=%q listens on one interface only; other containers cannot reach it", where, key, addr)
	}
	return want
}

// checkComposeURLs checks that every address a service is given names a
// compose service on the port that service listens on, and that the service
// waits for it.
func checkComposeURLs(t *testing.T, where string, svcs, svc map[string]any, env map[string]string, col collectorConfig) {
	t.Helper()
	apiPorts := map[string]int{}
	for _, s := range services() {
		if d, err := s.defaults(); err == nil {
			apiPorts[s.Name], _ = port(d.HTTPAddr)
		}
	}
	target := func(key, host string) {
		if svcs[host] == nil {
			t.Errorf("%s: %s=%q names no compose service", where, key, env[key])
			return
		}
		if mapAt(svc, "depends_on", host) == nil {
			t.Errorf("%s: %s points at %s, which it does not depend on (start order)", where, key, host)
		}
	}
	for _, key := range sortedKeys(env) {
		v := env[key]
		switch key {
		case "AUTH_URL", "CUSTOMER_URL":
			host, p, err := hostPort(v)
			want := strings.ToLower(strings.TrimSuffix(key, "_URL"))
			if err != nil || host != want || p != apiPorts[want] {
				t.Errorf("%s: %s=%q, want http://%s:%d", where, key, v, want, apiPorts[want])
				continue
			}
			target(key, host)
			if c := strAt(svc, "depends_on", host, "condition"); c != "service_healthy" {
				t.Errorf("%s: depends_on %s condition %q, want service_healthy", where, host, c)
			}
		case "MONGODB_URI":
			u, err := url.Parse(v)
			if err != nil {
				t.Errorf("%s: MONGODB_URI: %v", where, err)
				continue
			}
			host, p, _ := strings.Cut(u.Host, ":")
			target(key, host)
			if p != "27017" {
				t.Errorf("%s: MONGODB_URI %q, want port 27017", where, v)
			}
			cmd := strList(valAt(svcs, host, "command"))
			i := slices.Index(cmd, "--replSet")
			if i < 0 || i+1 >= len(cmd) || u.Query().Get("replicaSet") != cmd[i+1] {
				t.Errorf("%s: MONGODB_URI %q does not name the replica set mongod runs (%q)", where, v, cmd)
			}
		case "REDIS_URL":
			host, p, err := hostPort(v)
			if err != nil || p != 6379 {
				t.Errorf("%s: REDIS_URL %q, want redis://<service>:6379/<db>", where, v)
				continue
			}
			target(key, host)
		case "OTEL_EXPORTER_OTLP_ENDPOINT":
			host, p, err := hostPort(v)
			if err != nil {
				t.Errorf("%s: %s: %v", where, key, err)
				continue
			}
			target(key, host)
			if host != "otel-collector" {
				t.Errorf("%s: %s=%q, want the otel-collector service", where, key, v)
			}
			want := col.receiverPort(t, env["OTEL_EXPORTER_OTLP_PROTOCOL"])
			if p != want {
				t.Errorf("%s: %s=%q, but the collector's OTLP %s receiver listens on %d", where, key, v, env["OTEL_EXPORTER_OTLP_PROTOCOL"], want)
			}
		}
	}
}

// TestComposeMigrate: the migration tool's compose service runs the image's
// migrate binary with the variables it reads, against the same database and
// auth client the services use.
func TestComposeMigrate(t *testing.T) {
	t.Parallel()
	tool, err := migrateTool()
	if err != nil {
		t.Fatal(err)
	}
	doc := loadCompose(t)
	img := builtImage(t)
	svcs := mapAt(doc, "services")
	m := mapAt(svcs, "migrate")
	if m == nil {
		t.Fatal("compose.yaml has no migrate service")
	}
	if !slices.Contains(strList(m["profiles"]), "tools") {
		t.Error("migrate: want profiles: [tools], so that `up` does not run it")
	}
	if cmd := strList(m["command"]); len(cmd) == 0 || !img.has(cmd[0]) || cmd[0] != img.path("migrate") {
		t.Errorf("migrate: command %q, want the image's %s", cmd, img.path("migrate"))
	}
	if strAt(m, "image") != strAt(svcs, "auth", "image") {
		t.Errorf("migrate: image %q, want the platform image", strAt(m, "image"))
	}
	env := composeEnv(m)
	for _, p := range checkEnv(tool, "compose.yaml", env) {
		t.Error(p)
	}
	checkComposeURLs(t, "compose.yaml migrate", svcs, m, env, readCollector(t))
	customer := composeEnv(mapAt(svcs, "customer"))
	if env["CUSTOMER_DB"] != customer["CUSTOMER_DB"] || env["MONGODB_URI"] != customer["MONGODB_URI"] {
		t.Errorf("migrate: CUSTOMER_DB %q at %q, but the customer service uses %q at %q", env["CUSTOMER_DB"], env["MONGODB_URI"], customer["CUSTOMER_DB"], customer["MONGODB_URI"])
	}
	pair := env["MIGRATE_CLIENT_ID"] + ":" + env["MIGRATE_CLIENT_SECRET"]
	if !slices.Contains(strings.Split(composeEnv(mapAt(svcs, "auth"))["AUTH_SERVICE_CLIENTS"], ","), pair) {
		t.Errorf("migrate: auth's AUTH_SERVICE_CLIENTS does not hold the client %q", env["MIGRATE_CLIENT_ID"])
	}
	if strAt(m, "read_only") != "true" || !slices.Contains(strList(m["cap_drop"]), "ALL") {
		t.Error("migrate: want read_only: true and cap_drop: [ALL]")
	}
}

func TestComposeInfrastructure(t *testing.T) {
	t.Parallel()
	doc := loadCompose(t)
	svcs := mapAt(doc, "services")

	// MongoDB: a replica set initiated by the health check, healthy when primary.
	mongo := mapAt(svcs, "mongodb")
	cmd := strList(mongo["command"])
	if !slices.Contains(cmd, "--replSet") || !slices.Contains(cmd, "--bind_ip_all") {
		t.Errorf("mongodb: command %q, want mongod --replSet NAME --bind_ip_all", cmd)
	}
	probe := strings.Join(strList(valAt(mongo, "healthcheck", "test")), " ")
	for _, want := range []string{"rs.status()", "rs.initiate(", "host: 'mongodb:27017'", "isWritablePrimary"} {
		if !strings.Contains(probe, want) {
			t.Errorf("mongodb: the health check should initiate the replica set idempotently and wait for a primary; it lacks %q", want)
		}
	}
	if i := slices.Index(cmd, "--replSet"); i >= 0 && i+1 < len(cmd) && !strings.Contains(probe, "_id: '"+cmd[i+1]+"'") {
		t.Errorf("mongodb: the health check initiates another replica set than --replSet %s", cmd[i+1])
	}
	if !slices.ContainsFunc(strList(mongo["volumes"]), func(v string) bool { return strings.HasSuffix(v, ":/data/db") }) {
		t.Error("mongodb: /data/db is not on a volume; the data would die with the container")
	}
	if valAt(svcs, "redis", "healthcheck") == nil {
		t.Error("redis: no health check")
	}

	// The collector runs the repository's otel-collector.yaml.
	col := mapAt(svcs, "otel-collector")
	var cfgPath string
	for _, a := range strList(col["command"]) {
		if p, ok := strings.CutPrefix(a, "--config="); ok {
			cfgPath = p
		}
	}
	mounted := false
	for _, v := range strList(col["volumes"]) {
		f := strings.Split(v, ":")
		if len(f) >= 2 && f[1] == cfgPath && filepath.Join(deployDir(t), filepath.FromSlash(f[0])) == filepath.Join(repoRoot(t), "otel-collector.yaml") {
			mounted = true
		}
	}
	if cfgPath == "" || !mounted {
		t.Errorf("otel-collector: want --config=PATH with the repository's otel-collector.yaml mounted at PATH; command %q volumes %q", strList(col["command"]), strList(col["volumes"]))
	}
	env := composeEnv(col)
	for _, v := range readCollector(t).requiredEnv {
		if env[v] == "" {
			t.Errorf("otel-collector: otel-collector.yaml needs ${env:%s}, which compose.yaml does not set", v)
		}
	}
	host, p, err := hostPort("tcp://" + env["TRACE_BACKEND_ENDPOINT"])
	if err != nil || host != "jaeger" || p != 4317 || svcs[host] == nil {
		t.Errorf("otel-collector: TRACE_BACKEND_ENDPOINT=%q, want jaeger:4317 (Jaeger's OTLP gRPC receiver)", env["TRACE_BACKEND_ENDPOINT"])
	}
	if strAt(svcs, "jaeger", "environment", "COLLECTOR_OTLP_ENABLED") != "true" {
		t.Error("jaeger: COLLECTOR_OTLP_ENABLED must be true")
	}
}
