package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// deployDir is this package's directory, repoRoot the repository's.
func deployDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Dir(file)
}

func repoRoot(t testing.TB) string { return filepath.Dir(deployDir(t)) }

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeAll parses every YAML document of b (empty documents are skipped).
func decodeAll(b []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func loadYAML(t testing.TB, path string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(readFile(t, path), &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// Accessors over decoded YAML: a missing or mistyped value gives the zero value.

func mapAt(v any, path ...string) map[string]any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	m, _ := v.(map[string]any)
	return m
}

func listAt(v any, path ...string) []any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	l, _ := v.([]any)
	return l
}

func valAt(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func strAt(v any, path ...string) string { return scalar(valAt(v, path...)) }

// scalar renders a YAML scalar as its text ("" for nil or collections).
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case uint64, int64, int, float64:
		return fmt.Sprint(x)
	}
	return ""
}

func intAt(v any, path ...string) (int, bool) {
	n, err := strconv.Atoi(strAt(v, path...))
	return n, err == nil
}

func strList(v any) []string {
	var out []string
	for _, e := range asList(v) {
		out = append(out, scalar(e))
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// port returns the port of a listen address such as ":8001" or "0.0.0.0:8001".
func port(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// hostPort returns the host and port of an absolute URL (the scheme's default port when absent).
func hostPort(raw string) (string, int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, err
	}
	if u.Host == "" {
		return "", 0, fmt.Errorf("%q has no host", raw)
	}
	p := u.Port()
	if p == "" {
		switch u.Scheme {
		case "http":
			p = "80"
		case "https":
			p = "443"
		default:
			return "", 0, fmt.Errorf("%q has no port", raw)
		}
	}
	n, err := strconv.Atoi(p)
	return u.Hostname(), n, err
}

// parseEnvFile reads KEY=VALUE lines (blank lines and # comments skipped),
// the format of .env files and kustomize's envs.
func parseEnvFile(b []byte) (map[string]string, error) {
	m := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("line %d: want KEY=VALUE, got %q", i+1, line)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("line %d: %s is set twice", i+1, k)
		}
		m[k] = v
	}
	return m, nil
}
