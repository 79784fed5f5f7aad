package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// FuzzExpandEnv: expanding ${VAR} and ${VAR:-default} in what a command
// line or a config file gives never panics; text without a $ is left
// alone, $$ is a literal $ (so escaping every $ gives the text back), a
// default stands in for an unset variable, and an error quotes at most a
// cut of the text.
func FuzzExpandEnv(f *testing.F) {
	const set, unset = "QUIVER_FUZZ_SET", "QUIVER_FUZZ_UNSET"
	f.Setenv(set, "broker-1:9092")
	for _, s := range []string{
		"localhost:9092", "${" + set + "}", "${" + unset + ":-b:1},${" + set + "}", "${" + unset + "}", "$$", "$", "a$b", "$${X}",
		"${", "${}", "${1X}", "${X:-}", "${X:-a}b}", "${ X }", "${X:-${Y}}", "\xff${X:-\xfe}", strings.Repeat("${"+unset+"}", 300),
		strings.Repeat("x", 1<<12) + "${" + strings.Repeat("V", 1<<12) + "}", strings.Repeat("$", 1001),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ExpandEnv(s)
		if err != nil {
			if len(err.Error()) > 1024 {
				t.Fatalf("error of %d bytes: %.200s…", len(err.Error()), err)
			}
		} else if !strings.Contains(s, "${") && out != strings.ReplaceAll(s, "$$", "$") {
			t.Fatalf("%q expanded to %q", s, out)
		}
		if !strings.Contains(s, "$") && (err != nil || out != s) {
			t.Fatalf("%q without a $ expanded to %q, %v", s, out, err)
		}
		if back, err := ExpandEnv(strings.ReplaceAll(s, "$", "$$")); err != nil || back != s {
			t.Fatalf("%q escaped expanded to %q, %v", s, back, err)
		}
		def := strings.ReplaceAll(s, "}", "")
		if got, err := ExpandEnv("${" + unset + ":-" + def + "}"); err != nil || got != def {
			t.Fatalf("default %q expanded to %q, %v", def, got, err)
		}
		if got, err := ExpandEnv("${" + set + ":-" + def + "}"); err != nil || got != "broker-1:9092" {
			t.Fatalf("a set variable with default %q expanded to %q, %v", def, got, err)
		}
	})
}

// FuzzDecodeSnapshot: a registry version read back from the store never
// panics the reader, whether its bytes are corrupt (rehash false) or its
// definitions are hostile under a matching hash (rehash true: the input
// is the definitions, and the envelope carries their hash). What it
// accepts encodes and decodes again to the same bytes and hash.
func FuzzDecodeSnapshot(f *testing.F) {
	defs, _ := seedFiles(f)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, d := range defs {
		parsed, errs := ParseDefinitions("fuzz", []string{"f.yaml"}, map[string][]byte{"f.yaml": d})
		if errs.Err() != nil || i%3 != 0 { // a third of them is plenty
			continue
		}
		hash, err := parsed.Hash()
		if err != nil {
			f.Fatal(err)
		}
		data, err := encodeSnapshot(&Snapshot{Format: snapshotFormat, Project: "fuzz", Version: 1, Hash: hash, CreatedAt: at, Defs: parsed})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, false)
		raw, err := json.Marshal(parsed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, true)
	}
	for _, s := range []string{
		`{"format": 1, "version": 1, "hash": "sha256:00", "definitions": {}}`,
		`{"format": 2, "version": 1}`, `{"format": 1, "version": 2, "definitions": {}}`, `{"format": 1, "version": 1}`,
		`{"format": 1, "format": 1, "version": 1, "created_at": "10000-01-01T00:00:00Z"}`, `{"extra": 1}`, `null`, ``, `{`,
	} {
		f.Add([]byte(s), false)
	}
	for _, s := range []string{
		`{}`, `null`, `{"project": "p\xff", "feature_views": [{"name": "v", "ttl": "-1h", "features": [{"name": "f", "type": "list<list<int32>>"}]}]}`,
		`{"feature_views": [null, {}], "entities": [null]}`, `{"feature_views": [{"ttl": 1e999}]}`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, rehash bool) {
		if rehash {
			var d Definitions
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if dec.Decode(&d) != nil || dec.More() {
				return
			}
			hash, err := d.Hash()
			if err != nil {
				return
			}
			data = []byte(fmt.Sprintf(`{"format": %d, "project": "fuzz", "version": 1, "hash": %q, "created_at": "2026-12-01T10:00:00Z", "definitions": %s}`,
				snapshotFormat, hash, data))
		}
		s, err := decodeSnapshot(1, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "registry version 1 ") && !strings.HasPrefix(err.Error(), "encode definitions: ") {
				t.Fatalf("error does not name the version: %v", err)
			}
			return
		}
		out, err := encodeSnapshot(s)
		if err != nil {
			return // a value the decoder took but JSON cannot hold (a year past 9999)
		}
		again, err := decodeSnapshot(1, out)
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v\n%s", err, out)
		}
		if again.Hash != s.Hash {
			t.Fatalf("hash %s became %s", s.Hash, again.Hash)
		}
		out2, err := encodeSnapshot(again)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable (%v):\n%s\n%s", err, out, out2)
		}
	})
}
