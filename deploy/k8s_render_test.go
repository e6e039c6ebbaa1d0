package deploy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// A rendering is the list of objects a kustomization produces.
type rendering struct {
	name    string
	objects []map[string]any
}

// kustomization is the part of kustomize's Kustomization that this
// repository's kustomizations use. It is decoded strictly: a field the
// renderer below does not implement fails the test instead of being ignored.
type kustomization struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Namespace  string `yaml:"namespace"`
	Resources  []string
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	}
	Replicas []struct {
		Name  string `yaml:"name"`
		Count int    `yaml:"count"`
	}
	Patches []struct {
		Patch  string `yaml:"patch"`
		Target struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"target"`
	}
	ConfigMapGenerator []generator `yaml:"configMapGenerator"`
	SecretGenerator    []generator `yaml:"secretGenerator"`
}

type generator struct {
	Name     string   `yaml:"name"`
	Behavior string   `yaml:"behavior"`
	Envs     []string `yaml:"envs"`
	Files    []string `yaml:"files"`
	Literals []string `yaml:"literals"`
}

// renderKustomization is a small kustomize: resources (files and
// directories), ConfigMap and Secret generators (create and merge, without
// the name hash), images, replicas, JSON 6902 patches and namespace. The test
// also renders with the real kustomize (kubectl kustomize) when it is
// installed and runs the same checks on both.
func renderKustomization(dir string) ([]map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.UnmarshalWithOptions(b, &k, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	if k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s/kustomization.yaml: kind %q", dir, k.Kind)
	}
	var objs []map[string]any
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: resource %s: %w", dir, r, err)
		}
		var more []map[string]any
		if st.IsDir() {
			more, err = renderKustomization(p)
		} else {
			var b []byte
			if b, err = os.ReadFile(p); err == nil {
				more, err = decodeAll(b)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		objs = append(objs, more...)
	}
	gen := func(kind string, gs []generator) error {
		for _, g := range gs {
			data := map[string]any{}
			for _, e := range g.Envs {
				b, err := os.ReadFile(filepath.Join(dir, e))
				if err != nil {
					return err
				}
				m, err := parseEnvFile(b)
				if err != nil {
					return fmt.Errorf("%s: %w", e, err)
				}
				for k, v := range m {
					data[k] = v
				}
			}
			for _, f := range g.Files {
				key, file, ok := strings.Cut(f, "=")
				if !ok {
					key, file = filepath.Base(f), f
				}
				b, err := os.ReadFile(filepath.Join(dir, file))
				if err != nil {
					return err
				}
				data[key] = string(b)
			}
			for _, l := range g.Literals {
				k, v, _ := strings.Cut(l, "=")
				data[k] = v
			}
			if kind == "Secret" {
				for k, v := range data {
					data[k] = base64.StdEncoding.EncodeToString([]byte(v.(string)))
				}
			}
			existing := findObject(objs, kind, g.Name)
			switch g.Behavior {
			case "merge":
				if existing == nil {
					return fmt.Errorf("%s %s: behavior merge, but the base has none", kind, g.Name)
				}
				m := mapAt(existing, "data")
				if m == nil {
					m = map[string]any{}
					existing["data"] = m
				}
				for k, v := range data {
					m[k] = v
				}
			case "", "create":
				if existing != nil {
					return fmt.Errorf("%s %s is generated twice", kind, g.Name)
				}
				o := map[string]any{"apiVersion": "v1", "kind": kind, "metadata": map[string]any{"name": g.Name}, "data": data}
				if kind == "Secret" {
					o["type"] = "Opaque"
				}
				objs = append(objs, o)
			default:
				return fmt.Errorf("%s %s: behavior %q not supported", kind, g.Name, g.Behavior)
			}
		}
		return nil
	}
	if err := gen("ConfigMap", k.ConfigMapGenerator); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := gen("Secret", k.SecretGenerator); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	for _, r := range k.Replicas {
		o := findObject(objs, "Deployment", r.Name)
		if o == nil {
			o = findObject(objs, "StatefulSet", r.Name)
		}
		if o == nil {
			return nil, fmt.Errorf("%s: replicas for %s, which does not exist", dir, r.Name)
		}
		mapAt(o, "spec")["replicas"] = uint64(r.Count)
	}
	for _, img := range k.Images {
		for _, o := range objs {
			for _, c := range podContainers(o) {
				name, tag := splitImage(strAt(c, "image"))
				if name != img.Name {
					continue
				}
				if img.NewName != "" {
					name = img.NewName
				}
				if img.NewTag != "" {
					tag = img.NewTag
				}
				c["image"] = name + ":" + tag
			}
		}
	}
	for _, p := range k.Patches {
		var ops []map[string]any
		if err := yaml.Unmarshal([]byte(p.Patch), &ops); err != nil {
			return nil, fmt.Errorf("%s: patch of %s %s: %w", dir, p.Target.Kind, p.Target.Name, err)
		}
		o := findObject(objs, p.Target.Kind, p.Target.Name)
		if o == nil {
			return nil, fmt.Errorf("%s: patch of %s %s, which does not exist", dir, p.Target.Kind, p.Target.Name)
		}
		for _, op := range ops {
			if err := applyJSONPatch(o, strAt(op, "op"), strAt(op, "path"), op["value"]); err != nil {
				return nil, fmt.Errorf("%s: patch of %s %s: %w", dir, p.Target.Kind, p.Target.Name, err)
			}
		}
	}
	if k.Namespace != "" {
		for _, o := range objs {
			if strAt(o, "kind") != "Namespace" {
				mapAt(o, "metadata")["namespace"] = k.Namespace
			}
		}
	}
	return objs, nil
}

// applyJSONPatch applies one add, replace or remove operation whose path
// goes through maps and list indices.
func applyJSONPatch(o map[string]any, op, path string, value any) error {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var cur any = o
	for _, p := range parts[:len(parts)-1] {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return fmt.Errorf("path %s: bad index %q", path, p)
			}
			cur = c[i]
		default:
			return fmt.Errorf("path %s does not exist", path)
		}
	}
	last := parts[len(parts)-1]
	m, ok := cur.(map[string]any)
	if !ok {
		return fmt.Errorf("path %s: only map members can be patched here", path)
	}
	_, exists := m[last]
	switch op {
	case "add":
		m[last] = value
	case "replace":
		if !exists {
			return fmt.Errorf("replace %s: nothing there", path)
		}
		m[last] = value
	case "remove":
		if !exists {
			return fmt.Errorf("remove %s: nothing there", path)
		}
		delete(m, last)
	default:
		return fmt.Errorf("op %q not supported", op)
	}
	return nil
}

func splitImage(ref string) (name, tag string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

func findObject(objs []map[string]any, kind, name string) map[string]any {
	for _, o := range objs {
		if strAt(o, "kind") == kind && strAt(o, "metadata", "name") == name {
			return o
		}
	}
	return nil
}

// podSpec returns the pod spec of a workload (nil for other kinds).
func podSpec(o map[string]any) map[string]any {
	switch strAt(o, "kind") {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		return mapAt(o, "spec", "template", "spec")
	case "CronJob":
		return mapAt(o, "spec", "jobTemplate", "spec", "template", "spec")
	case "Pod":
		return mapAt(o, "spec")
	}
	return nil
}

func podContainers(o map[string]any) []map[string]any {
	spec := podSpec(o)
	var cs []map[string]any
	for _, key := range []string{"initContainers", "containers"} {
		for _, c := range listAt(spec, key) {
			if m, ok := c.(map[string]any); ok {
				cs = append(cs, m)
			}
		}
	}
	return cs
}

// k8sTree copies deploy/k8s into a temporary directory and writes each
// overlay's secrets.env from its secrets.env.example with test secrets, as an
// operator would (the real file is never committed).
func k8sTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(deployDir(t), "k8s")
	dst := filepath.Join(t.TempDir(), "k8s")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if d.Name() == "secrets.env" {
			return nil // an operator's real file must not be read by tests
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Name() == "secrets.env.example" {
			filled, err := fillSecretsEnv(b)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			if err := os.WriteFile(filepath.Join(dst, filepath.Dir(rel), "secrets.env"), filled, 0o600); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// fillSecretsEnv gives every empty secret of a secrets.env.example a test
// value; AUTH_SERVICE_CLIENTS gets the BFF's, the migrate tool's and the
// customer service's.
func fillSecretsEnv(example []byte) ([]byte, error) {
	m, err := parseEnvFile(example)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch {
		case v != "":
		case k == "AUTH_SERVICE_CLIENTS":
			v = "bff:" + fakeSecret("BFF_SERVICE_CLIENT_SECRET") + ",migrate:" + fakeSecret("MIGRATE_CLIENT_SECRET") +
				",customer:" + fakeSecret("CUSTOMER_SERVICE_CLIENT_SECRET")
		default:
			v = fakeSecret(k)
		}
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return b.Bytes(), nil
}

// renderings renders the base and every overlay with the renderer above and,
// when kubectl is installed, with kubectl kustomize.
func renderings(t *testing.T) []rendering {
	t.Helper()
	tree := k8sTree(t)
	dirs := map[string]string{"base": filepath.Join(tree, "base")}
	overlays, err := os.ReadDir(filepath.Join(tree, "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range overlays {
		if o.IsDir() {
			dirs["overlays/"+o.Name()] = filepath.Join(tree, "overlays", o.Name())
		}
	}
	if _, ok := dirs["overlays/dev"]; !ok {
		t.Error("deploy/k8s/overlays/dev is missing")
	}
	kubectl, lookErr := exec.LookPath("kubectl")
	if lookErr != nil {
		t.Log("kubectl is not installed: the manifests are checked with the test's own renderer only")
	}
	var rs []rendering
	for _, name := range sortedKeys(dirs) {
		objs, err := renderKustomization(dirs[name])
		if err != nil {
			t.Fatalf("render %s: %v", name, err)
		}
		rs = append(rs, rendering{name, objs})
		if kubectl == "" {
			continue
		}
		var stderr bytes.Buffer
		cmd := exec.Command(kubectl, "kustomize", dirs[name])
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", name, err, stderr.String())
		}
		kobjs, err := decodeAll(out)
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", name, err)
		}
		// Both renderers produce the same objects (up to generated name hashes).
		ids := func(objs []map[string]any, hashed bool) []string {
			var s []string
			for _, o := range objs {
				n := strAt(o, "metadata", "name")
				if k := strAt(o, "kind"); hashed && (k == "ConfigMap" || k == "Secret") {
					if i := strings.LastIndex(n, "-"); i > 0 && len(n)-i-1 == 10 && strings.Trim(n[i+1:], "abcdefghijklmnopqrstuvwxyz0123456789") == "" {
						n = n[:i] // kustomize's content hash
					}
				}
				s = append(s, strAt(o, "kind")+"/"+n)
			}
			slices.Sort(s)
			return s
		}
		if a, b := ids(objs, false), ids(kobjs, true); !slices.Equal(a, b) {
			t.Errorf("render %s: the test's renderer gives %q, kubectl kustomize %q", name, a, b)
		}
		rs = append(rs, rendering{name + " (kubectl kustomize)", kobjs})
	}
	return rs
}
