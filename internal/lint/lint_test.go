package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/quiverdata/quiver"

// pkg is what the rules read of go list -json.
type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	Doc        string
	ForTest    string
	Standard   bool
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
	Module     *struct{ Path string }
	Error      *struct{ Err string }
}

// rel is a package's path within the module ("" for the root, "-" for a
// package of another module); test variants ("p [p.test]", "p.test") read
// as p.
func (p *pkg) rel() string {
	path, _, _ := strings.Cut(p.ImportPath, " ")
	path = strings.TrimSuffix(path, ".test")
	if path == module {
		return ""
	}
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return "-"
}

func (p *pkg) test() bool {
	return p.ForTest != "" || strings.HasSuffix(p.ImportPath, ".test")
}

func (p *pkg) modulePath() string {
	if p.Module == nil {
		return ""
	}
	return p.Module.Path
}

// under reports whether a module-relative path is one of roots or below
// one of them.
func under(rel string, roots ...string) bool {
	for _, r := range roots {
		if rel == r || strings.HasPrefix(rel, r+"/") {
			return true
		}
	}
	return false
}

// core are the packages that hold Quiver's logic; they know nothing of
// the server, the CLI or the client.
var core = []string{"registry", "plan", "offline", "online", "materialize", "transform", "aggregate", "streamlog", "value", "wire", "storage"}

// rule forbids packages that from matches to depend, directly or not, on
// a package that forbid matches.
type rule struct {
	name   string
	from   func(p *pkg) bool
	forbid func(dep *pkg) bool
	// tests: the rule holds for the packages' tests too.
	tests bool
}

func quiver(roots ...string) func(*pkg) bool {
	return func(p *pkg) bool { return p.rel() != "-" && under(p.rel(), roots...) }
}

func modules(paths ...string) func(*pkg) bool {
	return func(p *pkg) bool { return slices.Contains(paths, p.modulePath()) }
}

func either(fs ...func(*pkg) bool) func(*pkg) bool {
	return func(p *pkg) bool {
		for _, f := range fs {
			if f(p) {
				return true
			}
		}
		return false
	}
}

// sdk matches the Go client's package itself (not sdk/embedded).
func sdk(p *pkg) bool { return p.rel() == "sdk" }

// cgo matches a non-standard package with cgo files.
func cgo(p *pkg) bool { return !p.Standard && len(p.CgoFiles) > 0 }

// quiverExcept matches Quiver's packages other than the ones named.
func quiverExcept(allowed ...string) func(*pkg) bool {
	return func(p *pkg) bool { return p.rel() != "-" && !slices.Contains(allowed, p.rel()) }
}

var rules = []rule{
	{name: "core packages never import the server, the CLI or the client",
		from: quiver(core...), forbid: quiver("server", "cmd", "sdk")},
	{name: "online never imports offline", from: quiver("online"), forbid: quiver("offline")},
	{name: "offline never imports online", from: quiver("offline"), forbid: quiver("online")},
	{name: "the planner knows no engine", from: quiver("plan"), forbid: quiver("online", "offline", "materialize")},
	{name: "value imports nothing of Quiver but internal/text",
		from: quiver("value"), forbid: quiverExcept("value", "internal/text")},
	{name: "wire imports nothing of Quiver but internal/text",
		from: quiver("wire"), forbid: quiverExcept("wire", "internal/text")},
	{name: "storage imports nothing of Quiver but internal/durable",
		from: quiver("storage"), forbid: quiverExcept("storage", "internal/durable")},
	{name: "sdk links no cgo", from: sdk, forbid: cgo},
	{name: "sdk links none of the stores', the engine's or the stream's dependencies",
		from: sdk, forbid: modules("github.com/duckdb/duckdb-go/v2", "github.com/duckdb/duckdb-go-bindings",
			"github.com/cockroachdb/pebble/v2", "github.com/redis/go-redis/v9", "github.com/segmentio/kafka-go",
			"github.com/twmb/franz-go", "github.com/google/cel-go")},
	{name: "sdk links none of Quiver's core or server",
		from: sdk, forbid: quiver("registry", "plan", "online", "offline", "server", "materialize", "transform", "aggregate", "streamlog")},
	// A module that requires sdk and runs go mod tidy loads sdk's tests:
	// they stay as light as sdk (the end-to-end ones are in sdk/internal/e2e).
	{name: "sdk's tests link none of Quiver's core or server, and no cgo", tests: true,
		from:   func(p *pkg) bool { return p.rel() == "sdk" && p.test() },
		forbid: either(cgo, quiver("registry", "plan", "online", "offline", "server", "materialize", "transform", "aggregate", "streamlog"))},
	{name: "nothing imports the examples", tests: true,
		from: func(p *pkg) bool { return p.rel() != "-" && !under(p.rel(), "examples") }, forbid: quiver("examples")},
}

// list runs go list -e -test -deps -json over the module.
func list(t *testing.T, root string) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-test", "-deps", "-json", "-tags", "duckdb_arrow", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("read go list: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// chain returns the shortest import chain from one package to a package
// that bad matches (nil when there is none).
func chain(pkgs map[string]*pkg, from string, bad func(*pkg) bool) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		p := pkgs[id]
		if p == nil {
			continue
		}
		if id != from && bad(p) {
			var out []string
			for ; id != ""; id = prev[id] {
				out = append(out, id)
			}
			slices.Reverse(out)
			return out
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = id
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

// violations checks every rule against pkgs.
func violations(pkgs map[string]*pkg, rules []rule) []string {
	ids := make([]string, 0, len(pkgs))
	for id := range pkgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []string
	for _, r := range rules {
		for _, id := range ids {
			p := pkgs[id]
			// A test main ("p.test") imports its test variant, which is
			// checked itself.
			if p.rel() == "-" || (p.test() && !r.tests) || strings.HasSuffix(id, ".test") || !r.from(p) {
				continue
			}
			if c := chain(pkgs, id, r.forbid); c != nil {
				out = append(out, fmt.Sprintf("%s: %s", r.name, strings.Join(c, " → ")))
			}
		}
	}
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

func TestLayering(t *testing.T) {
	pkgs := list(t, moduleRoot(t))
	for _, p := range pkgs {
		if p.Error != nil && p.rel() != "-" {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
	}
	for _, v := range violations(pkgs, rules) {
		t.Error(v)
	}
}

// TestRulesCatch: each kind of rule reports a violation with its chain.
func TestRulesCatch(t *testing.T) {
	mk := func(path string, imports ...string) *pkg {
		return &pkg{ImportPath: path, Imports: imports, Module: &struct{ Path string }{module}}
	}
	pkgs := map[string]*pkg{}
	for _, p := range []*pkg{
		mk(module+"/online", module+"/internal/x"),
		mk(module+"/internal/x", module+"/offline"),
		mk(module + "/offline"),
		mk(module+"/sdk", "github.com/duckdb/duckdb-go/v2"),
		{ImportPath: "github.com/duckdb/duckdb-go/v2", CgoFiles: []string{"duckdb.go"}, Module: &struct{ Path string }{"github.com/duckdb/duckdb-go/v2"}},
		mk(module+"/cmd/quiver ["+module+"/cmd/quiver.test]", module+"/examples/quickstart"),
		mk(module + "/examples/quickstart"),
	} {
		pkgs[p.ImportPath] = p
	}
	got := strings.Join(violations(pkgs, rules), "\n")
	for _, want := range []string{
		"online never imports offline: " + module + "/online → " + module + "/internal/x → " + module + "/offline",
		"sdk links no cgo: " + module + "/sdk → github.com/duckdb/duckdb-go/v2",
		"sdk links none of the stores', the engine's or the stream's dependencies: " + module + "/sdk → github.com/duckdb/duckdb-go/v2",
		"nothing imports the examples: " + module + "/cmd/quiver [" + module + "/cmd/quiver.test] → " + module + "/examples/quickstart",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations lack %q; got:\n%s", want, got)
		}
	}
}

// packageComments lists the files of a package that hold a package
// comment.
func packageComments(t *testing.T, p *pkg) []string {
	t.Helper()
	var out []string
	for _, name := range append(slices.Clone(p.GoFiles), p.CgoFiles...) {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		if f.Doc != nil {
			out = append(out, name)
		}
	}
	return out
}

// TestPackageComments: every package of the module has exactly one
// package comment (a doc.go when it is long).
func TestPackageComments(t *testing.T) {
	for _, p := range list(t, moduleRoot(t)) {
		if p.rel() == "-" || p.test() || len(p.GoFiles)+len(p.CgoFiles) == 0 {
			continue
		}
		if p.Doc == "" {
			t.Errorf("%s has no package comment: add a doc.go that says what it is for", p.ImportPath)
			continue
		}
		files := packageComments(t, p)
		if len(files) > 1 {
			t.Errorf("%s has %d package comments (%s): keep one", p.ImportPath, len(files), strings.Join(files, ", "))
		}
	}
}

// TestSDKBuildsWithoutCgo: the Go client builds with CGO_ENABLED=0 and no
// build tags.
func TestSDKBuildsWithoutCgo(t *testing.T) {
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./sdk")
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./sdk: %v\n%s", err, out)
	}
}
