package deploy

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dockerfile is what the tests need of deploy/Dockerfile.
type dockerfile struct {
	args   map[string]string // ARG defaults declared before the first FROM
	stages []stage
}

type stage struct {
	from, name   string
	instructions []instruction
}

type instruction struct{ cmd, args string }

// parseDockerfile splits a Dockerfile into stages and instructions, joining
// continued lines and dropping comments.
func parseDockerfile(b []byte) dockerfile {
	df := dockerfile{args: map[string]string{}}
	var logical []string
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#") || (t == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	for _, l := range logical {
		cmd, args, _ := strings.Cut(l, " ")
		cmd = strings.ToUpper(cmd)
		args = strings.TrimSpace(args)
		if cmd == "FROM" {
			f := strings.Fields(args)
			var st stage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.name = f[i+1]
					i++
				case st.from == "":
					st.from = df.expand(f[i])
				}
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) == 0 {
			if cmd == "ARG" {
				k, v, _ := strings.Cut(args, "=")
				df.args[k] = v
			}
			continue
		}
		st := &df.stages[len(df.stages)-1]
		st.instructions = append(st.instructions, instruction{cmd, args})
	}
	return df
}

func (df dockerfile) expand(s string) string {
	return os.Expand(s, func(k string) string { return df.args[k] })
}

func (st stage) all(cmd string) []string {
	var out []string
	for _, in := range st.instructions {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// image is what the Dockerfile's final stage holds.
type image struct {
	installDir string   // where the binaries are copied
	binaries   []string // their names
	user       string
}

// builtImage parses deploy/Dockerfile and returns the binaries its final
// stage holds, failing the test on any problem that would break the build or
// the hardening the deployments rely on.
func builtImage(t *testing.T) image {
	t.Helper()
	df := parseDockerfile(readFile(t, filepath.Join(deployDir(t), "Dockerfile")))
	if len(df.stages) < 2 {
		t.Fatalf("Dockerfile: want a multi-stage build, got %d stage(s)", len(df.stages))
	}
	build := df.stages[0]
	final := df.stages[len(df.stages)-1]

	if !strings.HasPrefix(build.from, "golang:1.26") {
		t.Errorf("Dockerfile: the builder is %q, want golang:1.26 (go.mod's Go)", build.from)
	}
	var goBuild string
	for _, r := range build.all("RUN") {
		if strings.Contains(r, "go build") {
			goBuild = r
		}
	}
	if goBuild == "" {
		t.Fatal("Dockerfile: no RUN ... go build in the first stage")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("Dockerfile: go build without %s: %s", want, goBuild)
		}
	}
	var img image
	fields := strings.Fields(goBuild[strings.Index(goBuild, "go build"):])
	var outDir string
	for i, f := range fields {
		if f == "-o" && i+1 < len(fields) {
			outDir = fields[i+1]
		}
		if strings.HasPrefix(f, "./") {
			dir := filepath.Join(repoRoot(t), filepath.FromSlash(f))
			if !isMainPackage(t, dir) {
				t.Errorf("Dockerfile builds %s, which is not a main package in this repository", f)
			}
			img.binaries = append(img.binaries, path.Base(f))
		}
	}
	if !strings.HasSuffix(outDir, "/") {
		t.Errorf("Dockerfile: go build -o %q: want a directory (ending in /) for several binaries", outDir)
	}

	if !strings.Contains(final.from, "distroless/static") {
		t.Errorf("Dockerfile: final stage from %q, want a distroless static image (no shell)", final.from)
	}
	if runs := final.all("RUN"); len(runs) > 0 {
		t.Errorf("Dockerfile: the final stage has RUN %q; the runtime image has no shell", runs)
	}
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		if len(f) == 3 && f[0] == "--from="+build.name && f[1] == outDir {
			img.installDir = strings.TrimSuffix(f[2], "/")
		}
	}
	if img.installDir == "" {
		t.Errorf("Dockerfile: the final stage does not COPY --from=%s %s", build.name, outDir)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Fatal("Dockerfile: the final stage sets no USER (it would run as root)")
	}
	img.user = users[len(users)-1]
	uid, _, _ := strings.Cut(img.user, ":")
	if uid == "" || uid == "0" || uid == "root" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("Dockerfile: final USER %q, want a numeric non-root uid (so runAsNonRoot can verify it)", img.user)
	}
	if len(final.all("ENTRYPOINT")) > 0 || len(final.all("CMD")) > 0 {
		t.Errorf("Dockerfile: the final stage sets ENTRYPOINT/CMD; each deployment names its binary")
	}
	return img
}

// isMainPackage reports whether dir holds a Go main package.
func isMainPackage(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.PackageClauseOnly)
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			return false
		}
		return f.Name.Name == "main"
	}
	return false
}

func (img image) path(binary string) string { return img.installDir + "/" + binary }

func (img image) has(command string) bool {
	dir, bin := path.Split(command)
	return strings.TrimSuffix(dir, "/") == img.installDir && slices.Contains(img.binaries, bin)
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	img := builtImage(t)
	for _, s := range services() {
		if !slices.Contains(img.binaries, s.Name) {
			t.Errorf("Dockerfile does not build the %s binary (./cmd/%s)", s.Name, s.Name)
		}
	}
	if !slices.Contains(img.binaries, "healthcheck") {
		t.Error("Dockerfile does not build the healthcheck probe compose.yaml uses")
	}
	if slices.Contains(img.binaries, "stack") {
		t.Error("Dockerfile builds cmd/stack, the development launcher: it is not for deployment")
	}
}

// TestDockerignore proves the build context holds what the build needs and
// nothing secret.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	var patterns []string
	for _, l := range strings.Split(string(readFile(t, filepath.Join(deployDir(t), "Dockerfile.dockerignore"))), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, p := range []string{".git", ".data", ".data/dev-secrets.json", "deploy/.env", ".env", "deploy/k8s/overlays/dev/secrets.env", "deploy/migrate-data/customers.json"} {
		if !dockerignored(patterns, p) {
			t.Errorf("the build context would include %s", p)
		}
	}
	// Every file in a directory with Go code (sources, embedded assets) and
	// the module files must be in the context.
	need := []string{"go.mod", "go.sum"}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || rel == "deploy/k8s" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			dir := path.Dir(rel)
			entries, _ := os.ReadDir(filepath.Dir(p))
			for _, e := range entries {
				if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					need = append(need, path.Join(dir, e.Name()))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(need)
	for _, p := range slices.Compact(need) {
		if dockerignored(patterns, p) {
			t.Errorf("Dockerfile.dockerignore excludes %s, which the build needs", p)
		}
	}
}

// dockerignored applies .dockerignore patterns (last match wins, ! negates,
// ** matches any number of directories) to a slash-separated path, or to
// any of its parent directories.
func dockerignored(patterns []string, p string) bool {
	ignored := false
	for _, pat := range patterns {
		neg := strings.HasPrefix(pat, "!")
		pat = strings.TrimPrefix(strings.TrimPrefix(pat, "!"), "/")
		if matchPathOrParent(pat, p) {
			ignored = !neg
		}
	}
	return ignored
}

func matchPathOrParent(pat, p string) bool {
	for q := p; q != "." && q != "/" && q != ""; q = path.Dir(q) {
		if globMatch(strings.Split(pat, "/"), strings.Split(q, "/")) {
			return true
		}
	}
	return false
}

func globMatch(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if globMatch(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], segs[0])
	return err == nil && ok && globMatch(pat[1:], segs[1:])
}
