// Package logtest reads a stream view's offline log in tests.
package logtest

import (
	"testing"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/quiverdata/quiver/streamlog"
)

// Rows counts the rows of the Parquet files a view's committed manifests
// name, reading each file's footer (not the manifests' own counts).
func Rows(t testing.TB, dataRoot, view string) int {
	t.Helper()
	files, err := streamlog.Files(dataRoot, view)
	if err != nil {
		t.Fatalf("log files of %s: %v", view, err)
	}
	n := 0
	for _, f := range files {
		r, err := file.OpenParquetFile(f, false)
		if err != nil {
			t.Fatalf("open %s: %v", f, err)
		}
		n += int(r.NumRows())
		if err := r.Close(); err != nil {
			t.Fatalf("close %s: %v", f, err)
		}
	}
	return n
}
