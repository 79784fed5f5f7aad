package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiverdata/quiver/internal/testutil/txtar"
)

// seedFiles returns every YAML file of the load and plan cases and of the
// quickstart, for the fuzzers' seed corpora.
func seedFiles(f *testing.F) (defs, configs [][]byte) {
	f.Helper()
	cases, err := filepath.Glob(filepath.Join("testdata", "*", "*.txtar"))
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		data, err := os.ReadFile(c)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range txtar.Parse(data).Files {
			switch {
			case strings.HasSuffix(file.Name, "/"+ConfigFile):
				configs = append(configs, file.Data)
			case strings.HasSuffix(file.Name, ".yaml"):
				defs = append(defs, file.Data)
			}
		}
	}
	quick, err := filepath.Glob(filepath.Join("..", "examples", "quickstart", "features", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, q := range quick {
		data, err := os.ReadFile(q)
		if err != nil {
			f.Fatal(err)
		}
		defs = append(defs, data)
	}
	return defs, configs
}

// FuzzParseDefinitions: the definition loader never panics, and every
// problem it reports carries the file name and a field or line.
func FuzzParseDefinitions(f *testing.F) {
	defs, _ := seedFiles(f)
	for _, d := range defs {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, errs := ParseDefinitions("fuzz", []string{"f.yaml"}, map[string][]byte{"f.yaml": data})
		for _, e := range errs {
			if e.Pos.File != "f.yaml" {
				t.Fatalf("error without its file: %v", e)
			}
			if e.Msg == "" {
				t.Fatalf("error without a message: %#v", e)
			}
		}
	})
}

// FuzzParseConfig: quiver.yaml decoding and interpolation never panic.
func FuzzParseConfig(f *testing.F) {
	_, configs := seedFiles(f)
	for _, c := range configs {
		f.Add(c)
	}
	f.Add([]byte("project: x\nkafka: {brokers: [\"${A:-b:1},${C}\"]}\n"))
	env := func(k string) (string, bool) {
		if k == "SET" {
			return "127.0.0.1:1", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, errs := ParseConfig(data, env)
		if cfg == nil {
			t.Fatal("nil config")
		}
		for _, e := range errs {
			if e.Pos.File != ConfigFile || e.Msg == "" {
				t.Fatalf("error without file or message: %#v", e)
			}
		}
	})
}
