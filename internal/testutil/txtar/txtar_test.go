package txtar

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFormatRoundTrip(t *testing.T) {
	in := "comment line\n-- a.yaml --\nx: 1\n-- dir/b.yaml --\n-- want --\nok\n"
	a := Parse([]byte(in))
	require.Equal(t, "comment line\n", string(a.Comment))
	require.Len(t, a.Files, 3)
	require.Equal(t, "dir/b.yaml", a.Files[1].Name)
	require.Empty(t, a.Files[1].Data)
	got, ok := a.Get("want")
	require.True(t, ok)
	require.Equal(t, "ok\n", string(got))
	require.Equal(t, in, string(Format(a)))

	a.Set("want", []byte("changed"))
	a.Set("new", []byte("n\n"))
	require.Equal(t, "comment line\n-- a.yaml --\nx: 1\n-- dir/b.yaml --\n-- want --\nchanged\n-- new --\nn\n", string(Format(a)))
}

func TestMarkerNeedsBothDashes(t *testing.T) {
	a := Parse([]byte("-- a --\n-- not a marker\n--x--\n"))
	require.Len(t, a.Files, 1)
	require.Equal(t, "-- not a marker\n--x--\n", string(a.Files[0].Data))
}

func TestWriteDir(t *testing.T) {
	a := Parse([]byte("-- before/q.yaml --\np: 1\n-- before/f/x.yaml --\nx\n-- after/q.yaml --\np: 2\n"))
	dir := t.TempDir()
	require.NoError(t, a.WriteDir(dir, "before/"))
	b, err := os.ReadFile(filepath.Join(dir, "f", "x.yaml"))
	require.NoError(t, err)
	require.Equal(t, "x\n", string(b))
	_, err = os.Stat(filepath.Join(dir, "after"))
	require.True(t, os.IsNotExist(err))
}
