package deploy

import (
	"bytes"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// collectorConfig is what the tests need of otel-collector.yaml.
type collectorConfig struct {
	doc         map[string]any
	requiredEnv []string // ${env:NAME} without a default
}

var collectorEnvRE = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

func readCollector(t *testing.T) collectorConfig {
	t.Helper()
	p := filepath.Join(repoRoot(t), "otel-collector.yaml")
	c := collectorConfig{doc: loadYAML(t, p)}
	for _, m := range collectorEnvRE.FindAllStringSubmatch(string(readFile(t, p)), -1) {
		if m[2] == "" && !slices.Contains(c.requiredEnv, m[1]) {
			c.requiredEnv = append(c.requiredEnv, m[1])
		}
	}
	return c
}

// receiverPort is the port of the OTLP receiver for an OTEL_EXPORTER_OTLP_PROTOCOL
// value (grpc; http/protobuf or http/json).
func (c collectorConfig) receiverPort(t *testing.T, protocol string) int {
	t.Helper()
	proto := "grpc"
	if strings.HasPrefix(protocol, "http") {
		proto = "http"
	}
	ep := strAt(c.doc, "receivers", "otlp", "protocols", proto, "endpoint")
	p, err := port(ep)
	if err != nil {
		t.Fatalf("otel-collector.yaml: the OTLP %s receiver's endpoint %q: %v", proto, ep, err)
	}
	return p
}

// TestCollectorConfig: the file parses, its pipelines use only components it
// defines, and it has what the platform relies on.
func TestCollectorConfig(t *testing.T) {
	t.Parallel()
	c := readCollector(t)
	doc := c.doc

	defined := func(kind, id string) bool {
		_, ok := mapAt(doc, kind)[id]
		return ok
	}
	for _, ext := range strList(valAt(doc, "service", "extensions")) {
		if !defined("extensions", ext) {
			t.Errorf("service.extensions uses %q, which extensions does not define", ext)
		}
	}
	pipelines := mapAt(doc, "service", "pipelines")
	if len(pipelines) == 0 {
		t.Fatal("otel-collector.yaml defines no pipelines")
	}
	used := map[string]map[string]bool{"receivers": {}, "processors": {}, "exporters": {}}
	for _, name := range sortedKeys(pipelines) {
		signal, _, _ := strings.Cut(name, "/")
		if signal != "traces" && signal != "metrics" && signal != "logs" {
			t.Errorf("pipeline %q: unknown signal %q", name, signal)
		}
		p := mapAt(pipelines, name)
		for _, kind := range []string{"receivers", "processors", "exporters"} {
			ids := strList(p[kind])
			if len(ids) == 0 && kind != "processors" {
				t.Errorf("pipeline %s has no %s", name, kind)
			}
			for _, id := range ids {
				used[kind][id] = true
				if !defined(kind, id) {
					t.Errorf("pipeline %s uses %s %q, which otel-collector.yaml does not define", name, kind, id)
				}
			}
		}
		procs := strList(p["processors"])
		if len(procs) < 2 || procs[0] != "memory_limiter" || !slices.Contains(procs, "batch") {
			t.Errorf("pipeline %s: processors %q, want memory_limiter first, then batch", name, procs)
		}
	}
	for _, kind := range []string{"receivers", "processors", "exporters"} {
		for _, id := range sortedKeys(mapAt(doc, kind)) {
			if !used[kind][id] {
				t.Errorf("%s %q is defined but no pipeline uses it", kind, id)
			}
		}
	}

	// Traces go to the trace backend (address from the environment) and to
	// the debug exporter; metrics to the Prometheus exporter.
	traces := mapAt(pipelines, "traces")
	var backend string
	for _, id := range strList(traces["exporters"]) {
		typ, _, _ := strings.Cut(id, "/")
		if typ == "otlp_grpc" || typ == "otlp" {
			backend = id
		}
	}
	if backend == "" || !slices.Contains(strList(traces["exporters"]), "debug") {
		t.Errorf("traces pipeline exports to %q, want an OTLP exporter to the trace backend and debug", strList(traces["exporters"]))
	} else if ep := strAt(doc, "exporters", backend, "endpoint"); ep != "${env:TRACE_BACKEND_ENDPOINT}" {
		t.Errorf("exporter %s: endpoint %q, want ${env:TRACE_BACKEND_ENDPOINT}", backend, ep)
	}
	if !slices.ContainsFunc(strList(valAt(pipelines, "metrics", "exporters")), func(id string) bool { return strings.HasPrefix(id, "prometheus") }) {
		t.Error("the metrics pipeline does not export to a prometheus exporter")
	}

	// Receivers reachable from other containers, on the standard OTLP ports.
	for proto, want := range map[string]string{"grpc": "0.0.0.0:4317", "http": "0.0.0.0:4318"} {
		if got := strAt(doc, "receivers", "otlp", "protocols", proto, "endpoint"); got != want {
			t.Errorf("OTLP %s receiver endpoint %q, want %q", proto, got, want)
		}
	}
	if !slices.Contains(c.requiredEnv, "TRACE_BACKEND_ENDPOINT") {
		t.Error("otel-collector.yaml does not take the trace backend's address from ${env:TRACE_BACKEND_ENDPOINT}")
	}
}

// TestCollectorConfigCopy: kustomize cannot read files outside its
// directory, so the base carries a copy of otel-collector.yaml.
func TestCollectorConfigCopy(t *testing.T) {
	t.Parallel()
	orig := readFile(t, filepath.Join(repoRoot(t), "otel-collector.yaml"))
	cp := readFile(t, filepath.Join(deployDir(t), "k8s", "base", "otel-collector-config.yaml"))
	if !bytes.Equal(orig, cp) {
		t.Error("deploy/k8s/base/otel-collector-config.yaml differs from otel-collector.yaml: cp otel-collector.yaml deploy/k8s/base/otel-collector-config.yaml")
	}
}
