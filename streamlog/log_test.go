package streamlog

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

var fields = []*registry.Field{
	{Name: "driver_id", Type: registry.TypeInt64},
	{Name: "fare", Type: registry.ValueType{Elem: registry.Float64}},
	{Name: "ts", Type: registry.TypeTimestamp},
}

func ev(off int64, id int64, fare any, at time.Time) Event {
	return Event{Values: []any{id, fare, at}, Time: at, Offset: off}
}

func TestAppendSplitsByDateAndCommitsWithManifest(t *testing.T) {
	root := t.TempDir()
	l, err := Open(root, "driver_trips", fields)
	require.NoError(t, err)
	day := time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC)
	m, err := l.Append(Batch{Stream: "trips", Partition: 3, Events: []Event{
		ev(10, 1, 5.0, day), ev(11, 2, nil, day.Add(2*time.Minute)), ev(12, 1, 7.5, day.Add(30*time.Second)),
	}})
	require.NoError(t, err)
	require.Equal(t, "trips-p00003-00000000000000000010-00000000000000000012", m.Batch)
	require.Len(t, m.Files, 2)
	require.Equal(t, "date=2026-11-22/"+m.Batch+"-0.parquet", m.Files[0].Path)
	require.Equal(t, int64(2), m.Files[0].Rows)
	require.Equal(t, "date=2026-11-23/"+m.Batch+"-1.parquet", m.Files[1].Path)

	files, err := Files(root, "driver_trips")
	require.NoError(t, err)
	require.Len(t, files, 2)
	require.True(t, filepath.IsAbs(files[0]))
	tbl := readParquet(t, files[0])
	require.Equal(t, int64(2), tbl)

	offs, err := l.Offsets()
	require.NoError(t, err)
	require.Equal(t, map[Position]int64{{Stream: "trips", Partition: 3}: 12}, offs)

	_, err = l.Append(Batch{Stream: "trips", Partition: 3, Events: []Event{ev(13, 1, 1.0, day)}})
	require.NoError(t, err)
	_, err = l.Append(Batch{Stream: "trips", Partition: 0, Events: []Event{ev(4, 1, 1.0, day)}})
	require.NoError(t, err)
	offs, err = l.Offsets()
	require.NoError(t, err)
	require.Equal(t, map[Position]int64{{Stream: "trips", Partition: 3}: 13, {Stream: "trips", Partition: 0}: 4}, offs)

	// Pushed rows carry no offset and do not count as a position's offset.
	_, err = l.Append(Batch{Stream: "push", Events: []Event{ev(NoOffset, 9, 2.0, day)}})
	require.NoError(t, err)
	offs, err = l.Offsets()
	require.NoError(t, err)
	require.Len(t, offs, 2)
	files, err = Files(root, "driver_trips")
	require.NoError(t, err)
	require.Len(t, files, 5)
}

func TestFilesOfAViewNeverLogged(t *testing.T) {
	files, err := Files(t.TempDir(), "nothing")
	require.NoError(t, err)
	require.Empty(t, files)
}

func TestRecoverRemovesOnlyUncommittedFiles(t *testing.T) {
	root := t.TempDir()
	l, err := Open(root, "v", fields)
	require.NoError(t, err)
	day := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	_, err = l.Append(Batch{Stream: "trips", Events: []Event{ev(0, 1, 1.0, day)}})
	require.NoError(t, err)
	// What a crash between the steps leaves: a temporary file and a
	// renamed Parquet file whose manifest was never written.
	dir := filepath.Join(ViewDir(root, "v"), "date=2026-11-22")
	orphan := filepath.Join(dir, "trips-p00000-00000000000000000001-00000000000000000001-0.parquet")
	require.NoError(t, os.WriteFile(orphan, []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(orphan+".tmp", []byte("x"), 0o644))

	files, err := Files(root, "v")
	require.NoError(t, err)
	require.Len(t, files, 1, "an uncommitted file is never visible")

	n, err := l.Recover(time.Hour)
	require.NoError(t, err)
	require.Zero(t, n, "young files may belong to a batch being committed")
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(orphan, old, old))
	require.NoError(t, os.Chtimes(orphan+".tmp", old, old))
	n, err = l.Recover(time.Hour)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	files, err = Files(root, "v")
	require.NoError(t, err)
	require.Len(t, files, 1)
	require.FileExists(t, files[0])
}

func TestParseBatchName(t *testing.T) {
	pos, last, ok := parseBatchName("my-topic.v2-p00012-00000000000000000005-00000000000000000099")
	require.True(t, ok)
	require.Equal(t, Position{Stream: "my-topic.v2", Partition: 12}, pos)
	require.Equal(t, int64(99), last)
	for _, bad := range []string{"", "push-p00000-t00000000000000000001-abcdef", "x-p0001-1-2", "trips-pxxxxx-00000000000000000005-00000000000000000099"} {
		_, _, ok := parseBatchName(bad)
		require.False(t, ok, bad)
	}
}

func readParquet(t *testing.T, path string) int64 {
	t.Helper()
	r, err := file.OpenParquetFile(path, false)
	require.NoError(t, err)
	defer r.Close()
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	require.NoError(t, err)
	s, err := fr.Schema()
	require.NoError(t, err)
	require.Equal(t, "driver_id", s.Field(0).Name)
	return r.NumRows()
}

// TestAppendRefusesTimesOutOfRange: a time the manifest's JSON cannot
// hold is refused before any file is written.
func TestAppendRefusesTimesOutOfRange(t *testing.T) {
	root := t.TempDir()
	l, err := Open(root, "driver_trips", fields)
	require.NoError(t, err)
	day := time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC)
	bad := time.Date(-249, 3, 1, 0, 0, 0, 0, time.UTC)
	_, err = l.Append(Batch{Stream: "trips", Partition: 0, Events: []Event{ev(1, 1, 1.0, day), ev(2, 2, 1.0, bad)}})
	require.ErrorContains(t, err, "stream log of view driver_trips: event 1 (offset 2): time year -249 (03-01T00:00:00Z) is out of range")
	requireNoFiles(t, root)
}

// TestPrepareAbortLeavesNothing: a prepared batch is invisible until it
// is committed, and an aborted one leaves no file behind.
func TestPrepareAbortLeavesNothing(t *testing.T) {
	root := t.TempDir()
	l, err := Open(root, "driver_trips", fields)
	require.NoError(t, err)
	day := time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC)
	p, err := l.Prepare(Batch{Stream: "push", Events: []Event{ev(NoOffset, 1, 1.0, day), ev(NoOffset, 2, 1.0, day.Add(time.Hour))}})
	require.NoError(t, err)
	files, err := Files(root, "driver_trips")
	require.NoError(t, err)
	require.Empty(t, files, "prepared, not committed")
	require.NoError(t, p.Abort())
	requireNoFiles(t, root)

	p, err = l.Prepare(Batch{Stream: "push", Events: []Event{ev(NoOffset, 1, 1.0, day)}})
	require.NoError(t, err)
	m, err := p.Commit()
	require.NoError(t, err)
	require.Len(t, m.Files, 1)
	require.NoError(t, p.Abort(), "an abort after the commit removes nothing")
	files, err = Files(root, "driver_trips")
	require.NoError(t, err)
	require.Len(t, files, 1)
	_, err = os.Stat(files[0])
	require.NoError(t, err)
}

// requireNoFiles fails when the stream log under root holds any file.
func requireNoFiles(t *testing.T, root string) {
	t.Helper()
	var found []string
	require.NoError(t, filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = append(found, path)
		}
		return err
	}))
	require.Empty(t, found)
}

func TestManifestsRefuseFilesOutsideTheView(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(ViewDir(root, "v"), manifestDir)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, tc := range []struct{ name, body, want string }{
		{"b.json", `{"batch": "b", "files": [{"path": "../../../secret.parquet", "rows": 1}]}`,
			`manifest b.json: files[0]: path "../../../secret.parquet" is not a Parquet file under the view's directory`},
		{"b.json", `{"batch": "b", "files": [{"path": "/etc/x.parquet", "rows": 1}]}`, `path "/etc/x.parquet" is not a Parquet file`},
		{"b.json", `{"batch": "b", "files": [{"path": "date=2026-11-22/b-0.csv", "rows": 1}]}`, `path "date=2026-11-22/b-0.csv" is not a Parquet file`},
		{"b.json", `{"batch": "b", "files": [{"path": "date=2026-11-22/b-0.parquet", "rows": -1}]}`, "manifest b.json: files[0]: -1 rows"},
		{"b.json", `{"batch": "c", "files": []}`, `manifest b.json: batch "c" is not the file's name`},
		{"b.json", `{"batch": "b"} {}`, "manifest b.json: invalid character"},
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, tc.name), []byte(tc.body), 0o644))
		_, err := Files(root, "v")
		require.ErrorContains(t, err, "stream log of view v: ")
		require.ErrorContains(t, err, tc.want)
	}
}

// FuzzManifest: a manifest read from disk never panics the reader; an
// error names the manifest; what is accepted names only Parquet files
// under the view's directory, and writes and reads back the same.
func FuzzManifest(f *testing.F) {
	const name = "trips-p00003-00000000000000000010-00000000000000000012.json"
	for _, s := range []string{
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "stream": "trips", "partition": 3, "first_offset": 10, "last_offset": 12,
		  "files": [{"path": "date=2026-11-22/trips-p00003-00000000000000000010-00000000000000000012-0.parquet", "rows": 2, "min_time": "2026-11-22T23:59:00Z", "max_time": "2026-11-22T23:59:30Z"}],
		  "committed": "2026-11-23T00:00:01.5+01:00"}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "files": [{"path": "date=0001-01-01/x.parquet", "rows": 1, "min_time": "0001-01-01T00:00:00Z"}]}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "files": [{"path": "../../x.parquet"}]}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "files": [{"path": "a/../../x.parquet"}, {"path": "/x.parquet"}]}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "batch": "other"}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "partition": 99999999999, "first_offset": 1e30}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "committed": "-0249-01-01T00:00:00Z"}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "committed": "10000-01-01T00:00:00Z"}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "files": [{"path": "\xff.parquet", "rows": -1}]}`,
		`{"batch": "trips-p00003-00000000000000000010-00000000000000000012", "files": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`,
		`{}`, `null`, `[]`, ``, `{"batch": `,
	} {
		f.Add([]byte(s))
	}
	viewDir := ViewDir("root", "v")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeManifest(name, data)
		if err != nil {
			require.ErrorContains(t, err, "manifest "+name+": ")
			return
		}
		for _, file := range m.Files {
			rel, err := filepath.Rel(viewDir, filepath.Join(viewDir, filepath.FromSlash(file.Path)))
			require.NoError(t, err)
			if !filepath.IsLocal(rel) || filepath.Ext(rel) != ".parquet" || file.Rows < 0 {
				t.Fatalf("accepted file %+v", file)
			}
		}
		out, err := json.Marshal(m)
		require.NoError(t, err)
		again, err := decodeManifest(name, out)
		require.NoError(t, err, "reading back %s", out)
		back, err := json.Marshal(again)
		require.NoError(t, err)
		require.Equal(t, string(out), string(back))
	})
}

// A data root on object storage is refused by name, not read or written
// as a local directory named "s3:".
func TestObjectStorageDataRootIsRefused(t *testing.T) {
	_, err := Open("s3://bucket/data", "v", []*registry.Field{{Name: "ts", Type: registry.TypeTimestamp}})
	require.ErrorContains(t, err, "s3://bucket/data is on object storage")
	_, err = Files("s3://bucket/data", "v")
	require.ErrorContains(t, err, "stream log of view v")
	_, err = Manifests("s3://bucket/data", "v")
	require.ErrorContains(t, err, "is on object storage")
	_, statErr := os.Stat("s3:")
	require.True(t, os.IsNotExist(statErr))
}
