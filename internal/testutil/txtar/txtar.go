// Package txtar reads and writes the simple text archives that hold
// data-driven test cases: a comment, then files, each introduced by a line
// "-- name --". Tests keep a whole feature repository and the expected
// output of a command in one readable file.
package txtar

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// File is one file of an archive.
type File struct {
	Name string
	Data []byte
}

// Archive is a parsed archive.
type Archive struct {
	Comment []byte
	Files   []File
}

// Parse parses data. A line "-- name --" starts a file; everything before
// the first such line is the comment.
func Parse(data []byte) *Archive {
	a := &Archive{}
	var cur *File
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if name, ok := marker(line); ok {
			a.Files = append(a.Files, File{Name: name})
			cur = &a.Files[len(a.Files)-1]
			continue
		}
		if cur == nil {
			a.Comment = append(a.Comment, line...)
		} else {
			cur.Data = append(cur.Data, line...)
		}
	}
	return a
}

func marker(line []byte) (string, bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if !strings.HasPrefix(s, "-- ") || !strings.HasSuffix(s, " --") || len(s) < 7 {
		return "", false
	}
	return strings.TrimSpace(s[3 : len(s)-3]), true
}

// Format renders the archive; Parse(Format(a)) equals a when every file
// ends with a newline.
func Format(a *Archive) []byte {
	var b bytes.Buffer
	b.Write(a.Comment)
	for _, f := range a.Files {
		fmt.Fprintf(&b, "-- %s --\n", f.Name)
		b.Write(f.Data)
		if len(f.Data) > 0 && f.Data[len(f.Data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// Get returns the named file's data and whether it exists.
func (a *Archive) Get(name string) ([]byte, bool) {
	for _, f := range a.Files {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

// Set replaces the named file's data, adding the file if needed.
func (a *Archive) Set(name string, data []byte) {
	for i := range a.Files {
		if a.Files[i].Name == name {
			a.Files[i].Data = data
			return
		}
	}
	a.Files = append(a.Files, File{Name: name, Data: data})
}

// WriteDir writes the files whose names start with prefix into dir, with
// the prefix removed, creating directories as needed.
func (a *Archive) WriteDir(dir, prefix string) error {
	for _, f := range a.Files {
		rel, ok := strings.CutPrefix(f.Name, prefix)
		if !ok {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// RunGolden runs fn on every archive matching pattern (a glob) as a
// subtest and compares its result with the archive's "want" file; with
// update, it rewrites "want" instead. Each package passes its own -update
// flag.
func RunGolden(t *testing.T, pattern string, update bool, fn func(t *testing.T, a *Archive) string) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no test cases match %s", pattern)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			a := Parse(data)
			got := fn(t, a)
			if update {
				a.Set("want", []byte(got))
				if err := os.WriteFile(file, Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, ok := a.Get("want")
			if !ok {
				t.Fatalf("%s has no want section (run with -update)", file)
			}
			if string(want) != got {
				t.Errorf("%s: output differs (rerun with -update to accept)\n--- want\n%s--- got\n%s", file, want, got)
			}
		})
	}
}
