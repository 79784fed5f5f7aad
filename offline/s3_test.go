package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/parquettest"
	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

// upload copies every file below dir into the server's bucket under
// prefix, keyed by their slash-separated paths below dir.
func upload(t testing.TB, srv *s3test.Server, dir, prefix string) {
	t.Helper()
	ctx := context.Background()
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = b.Put(ctx, prefix+filepath.ToSlash(rel), f)
		return err
	}))
}

// openS3Engine opens an engine over dataRoot that reaches srv, with a
// cache of its own.
func openS3Engine(t testing.TB, srv *s3test.Server, dataRoot string, edit func(*Options)) *Engine {
	t.Helper()
	opts := Options{DataRoot: dataRoot, Threads: 2, Storage: storage.Config{S3: srv.Options()},
		Cache: CacheOptions{Dir: filepath.Join(t.TempDir(), "cache")}}
	if edit != nil {
		edit(&opts)
	}
	eng, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, eng.Close()) })
	return eng
}

func s3URI(srv *s3test.Server, key string) string { return "s3://" + srv.Bucket + "/" + key }

// An s3:// data root and an s3:// entity glob give the training set the
// same files give locally, row for row, and the reference's.
func TestS3DataRootMatchesLocal(t *testing.T) {
	ctx := context.Background()
	for seed := range 4 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newScenario(t, uint64(300+seed), []int{10, 40, 400, 40}[seed])
			srv := s3test.Start(t)
			upload(t, srv, s.dir, "repo/")

			local := openEngine(t, filepath.Join(s.dir, "data"))
			rr, err := local.TrainingSet(ctx, s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))))
			require.NoError(t, err)
			_, want := readAll(t, rr)

			eng := openS3Engine(t, srv, s3URI(srv, "repo/data/"), nil)
			rr, err = eng.TrainingSet(ctx, s.request(EntitiesFromParquet(s3URI(srv, "repo/entities-*.parquet"))))
			require.NoError(t, err)
			_, got := readAll(t, rr)
			require.Equal(t, want, got)
			s.check(t, got)

			// The same request again reads the cached copies: no object is
			// fetched twice.
			before := eng.CacheStats()
			rr, err = eng.TrainingSet(ctx, s.request(EntitiesFromParquet(s3URI(srv, "repo/entities-*.parquet"))))
			require.NoError(t, err)
			_, again := readAll(t, rr)
			require.Equal(t, want, again)
			after := eng.CacheStats()
			require.Equal(t, before.Misses, after.Misses)
			require.Equal(t, before.Fetched, after.Fetched)
			require.Greater(t, after.Hits, before.Hits)
		})
	}
}

// A source path may be an s3:// URI (here a glob over several objects)
// under a local data root; entity tables may be lists of s3:// objects.
func TestS3SourcePathUnderLocalRoot(t *testing.T) {
	ctx := context.Background()
	s := newScenario(t, 7, 40)
	srv := s3test.Start(t)
	upload(t, srv, filepath.Join(s.dir, "data", "drivers"), "stats/drivers/")
	upload(t, srv, s.dir, "all/")
	s.defs.Source("driver_src").Path = s3URI(srv, "stats/drivers/part-*.parquet")
	// The local copies are gone: only the objects can be read.
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, "data", "drivers")))

	eng := openS3Engine(t, srv, filepath.Join(s.dir, "data"), nil)
	var ents []string
	for f := range s.entityFiles {
		ents = append(ents, s3URI(srv, fmt.Sprintf("all/entities-%d.parquet", f)))
	}
	rr, err := eng.TrainingSet(ctx, s.request(EntitiesFromParquetFiles(ents)))
	require.NoError(t, err)
	_, rows := readAll(t, rr)
	s.check(t, rows)

	// Latest (batch materialization's read) stages the same way.
	lr, err := eng.Latest(ctx, &LatestRequest{Defs: s.defs, View: "drivers", End: *at(100)})
	require.NoError(t, err)
	_, latest := readAll(t, lr)
	require.NotEmpty(t, latest)
}

const oneViewDefs = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
sources:
  - {name: src, kind: parquet, path: %q, timestamp_field: event_timestamp}
feature_views:
  - name: drivers
    entities: [driver]
    source: src
    features:
      - {name: conversion_rate, type: float32}
`

func oneView(t *testing.T, path string) *registry.Definitions {
	t.Helper()
	defs, errs := registry.ParseDefinitions("s3", []string{"f.yaml"}, map[string][]byte{"f.yaml": fmt.Appendf(nil, oneViewDefs, path)})
	require.NoError(t, errs.Err())
	return defs
}

// writeDrivers writes one source file with one row per rate, driver i
// having rates[i], and an entity table asking for every driver.
func writeDrivers(t *testing.T, dir string, rates ...float32) (source, entities string) {
	t.Helper()
	var rows []driverRow
	var ents []entityRowUTC
	for i, r := range rates {
		rows = append(rows, driverRow{DriverID: ptr(int64(i)), EventTimestamp: at(1), ConversionRate: r})
		ents = append(ents, entityRowUTC{DriverID: ptr(int64(i)), TS: at(5), Label: int64(i)})
	}
	source, entities = filepath.Join(dir, "drivers.parquet"), filepath.Join(dir, "entities.parquet")
	require.NoError(t, parquettest.Write(source, rows))
	require.NoError(t, parquettest.Write(entities, ents))
	return source, entities
}

func putFile(t *testing.T, srv *s3test.Server, key, path string) {
	t.Helper()
	ctx := context.Background()
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = b.Put(ctx, key, f)
	require.NoError(t, err)
}

func rates(t *testing.T, eng *Engine, defs *registry.Definitions, entities string) []any {
	t.Helper()
	rr, err := eng.TrainingSet(context.Background(), &Request{Defs: defs, Entities: EntitiesFromParquet(entities), Features: []string{"drivers:conversion_rate"}})
	require.NoError(t, err)
	_, rows := readAll(t, rr)
	var out []any
	for _, r := range rows {
		out = append(out, r["conversion_rate"])
	}
	return out
}

// An object replaced between two requests is read anew: the second
// request sees the new content, never the cached copy of the old.
func TestS3ReplacedObjectIsReadFresh(t *testing.T) {
	srv := s3test.Start(t)
	dir := t.TempDir()
	src, ents := writeDrivers(t, dir, 0.5, 1.5)
	putFile(t, srv, "d/drivers.parquet", src)
	putFile(t, srv, "d/entities.parquet", ents)
	defs := oneView(t, s3URI(srv, "d/drivers.parquet"))
	eng := openS3Engine(t, srv, dir, nil)
	require.Equal(t, []any{float32(0.5), float32(1.5)}, rates(t, eng, defs, s3URI(srv, "d/entities.parquet")))

	src2, _ := writeDrivers(t, t.TempDir(), 2.5, 3.5)
	putFile(t, srv, "d/drivers.parquet", src2)
	require.Equal(t, []any{float32(2.5), float32(3.5)}, rates(t, eng, defs, s3URI(srv, "d/entities.parquet")))
	require.EqualValues(t, 3, eng.CacheStats().Misses) // two versions of the source, one entity table
}

// The cache never holds more than its bound: copies no request holds are
// evicted, and a request that needs more than the bound fails saying so.
func TestS3CacheBound(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	dir := t.TempDir()
	src, ents := writeDrivers(t, dir, 0.5, 1.5, 2.5)
	for _, k := range []string{"a", "b", "c"} {
		putFile(t, srv, "parts/"+k+"/drivers.parquet", src)
	}
	srcSize := fileSize(t, src)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	limit := 2 * srcSize // room for two parts of the three
	// Whole copies, so that each part takes its file's size.
	eng := openS3Engine(t, srv, dir, func(o *Options) { o.Cache = CacheOptions{Dir: cacheDir, MaxBytes: limit, WholeObjects: true} })
	for round := range 2 {
		for _, k := range []string{"a", "b", "c"} {
			defs := oneView(t, s3URI(srv, "parts/"+k+"/drivers.parquet"))
			require.Equal(t, []any{float32(0.5), float32(1.5), float32(2.5)}, rates(t, eng, defs, ents), "round %d part %s", round, k)
			require.LessOrEqual(t, dirBytes(t, cacheDir), limit)
			require.LessOrEqual(t, eng.CacheStats().Bytes, limit)
		}
	}
	require.Positive(t, eng.CacheStats().Evicted)

	// Three parts at once need more room than the cache has.
	defs := oneView(t, s3URI(srv, "parts/*/drivers.parquet"))
	_, err := eng.TrainingSet(ctx, &Request{Defs: defs, Entities: EntitiesFromParquet(ents), Features: []string{"drivers:conversion_rate"}})
	require.ErrorContains(t, err, "does not fit in the object cache")
	require.ErrorContains(t, err, "max_bytes")
	require.LessOrEqual(t, dirBytes(t, cacheDir), limit)
}

func fileSize(t testing.TB, p string) int64 {
	st, err := os.Stat(p)
	require.NoError(t, err)
	return st.Size()
}

func dirBytes(t *testing.T, dir string) int64 {
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var n int64
	for _, de := range des {
		info, err := de.Info()
		require.NoError(t, err)
		n += info.Size()
	}
	return n
}

// Missing keys, buckets and globs are invalid requests that name the
// bucket and key; wrong credentials fail naming them too, without the
// secret.
func TestS3Errors(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	dir := t.TempDir()
	src, ents := writeDrivers(t, dir, 0.5)
	putFile(t, srv, "d/drivers.parquet", src)
	putFile(t, srv, "d/entities.parquet", ents)
	run := func(eng *Engine, sourcePath, entities string) error {
		rr, err := eng.TrainingSet(ctx, &Request{Defs: oneView(t, sourcePath), Entities: EntitiesFromParquet(entities), Features: []string{"drivers:conversion_rate"}})
		if err == nil {
			rr.Release()
		}
		return err
	}
	eng := openS3Engine(t, srv, dir, nil)
	for _, c := range []struct {
		name, source, entities string
		want                   []string
	}{
		{"missing source key", s3URI(srv, "d/nope.parquet"), ents, []string{"source src", s3URI(srv, "d/nope.parquet"), "not found"}},
		{"source glob matching nothing", s3URI(srv, "d/*.csv"), ents, []string{"source src", "no object matches " + s3URI(srv, "d/*.csv")}},
		{"missing bucket", "s3://no-such-bucket/d/drivers.parquet", ents, []string{"s3://no-such-bucket/d/drivers.parquet", "bucket not found"}},
		{"missing entity key", s3URI(srv, "d/drivers.parquet"), s3URI(srv, "d/missing.parquet"), []string{"entity table", s3URI(srv, "d/missing.parquet"), "not found"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run(eng, c.source, c.entities)
			require.Error(t, err)
			t.Log(err)
			require.True(t, errors.Is(err, ErrInvalidRequest), "%v", err)
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	t.Run("every object refused", func(t *testing.T) {
		for _, k := range []string{"many/a.parquet", "many/b.parquet", "many/c.parquet"} {
			putFile(t, srv, k, src)
		}
		srv.FailNextMatching(100, 403, func(r s3test.Request) bool { return !strings.Contains(r.Query, "list-type") })
		defer srv.FailNext(0, 0)
		err := run(openS3Engine(t, srv, dir, nil), s3URI(srv, "many/*.parquet"), ents)
		require.Error(t, err)
		t.Log(err)
		require.ErrorContains(t, err, s3URI(srv, "many/a.parquet"))
		require.ErrorContains(t, err, "and 2 more of the 3 objects failed")
	})
	t.Run("wrong credentials", func(t *testing.T) {
		const secret = "not-the-secret-but-close-0123456789abcd"
		bad := openS3Engine(t, srv, dir, func(o *Options) { o.Storage.S3.Credentials = s3test.Credentials(s3test.AccessKey, secret) })
		err := run(bad, s3URI(srv, "d/drivers.parquet"), ents)
		require.Error(t, err)
		t.Log(err)
		require.False(t, errors.Is(err, ErrInvalidRequest), "%v", err)
		require.ErrorContains(t, err, s3URI(srv, "d/drivers.parquet"))
		require.ErrorContains(t, err, "403")
		require.NotContains(t, err.Error(), secret)
		require.NotContains(t, err.Error(), s3test.SecretKey)
	})
}

// An engine that reads only local files creates no cache directory, and
// a data root that is a malformed URI is refused when opened.
func TestS3OptionsAndLocalEngines(t *testing.T) {
	cacheDir := filepath.Join(t.TempDir(), "cache")
	s := newScenario(t, 3, 10)
	eng, err := Open(Options{DataRoot: filepath.Join(s.dir, "data"), Cache: CacheOptions{Dir: cacheDir}})
	require.NoError(t, err)
	defer eng.Close()
	rr, err := eng.TrainingSet(context.Background(), s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))))
	require.NoError(t, err)
	_, rows := readAll(t, rr)
	s.check(t, rows)
	_, err = os.Stat(cacheDir)
	require.ErrorIs(t, err, fs.ErrNotExist)

	// DuckDB is told never to install or load an extension on its own.
	conn, err := eng.conn(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	for _, setting := range []string{"autoinstall_known_extensions", "autoload_known_extensions"} {
		rows, err := queryInt(context.Background(), conn, "SELECT current_setting('"+setting+"')::INTEGER::BIGINT")
		require.NoError(t, err)
		require.Zero(t, rows, setting)
	}

	_, err = Open(Options{DataRoot: "s3://No_Such/bucket"})
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "data root"), "%v", err)
}

// A stream view's offline log kept below an s3:// data root gives the
// training set the same log gives below a local one, row for row: the
// engine reads only the objects the manifests name, staged in the log's
// source order, and never an object a batch left uncommitted.
func TestS3StreamLogMatchesLocal(t *testing.T) {
	ctx := context.Background()
	for seed := range 4 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			srv := s3test.Start(t)
			root := s3URI(srv, "repo/data")
			st := storage.NewStore(storage.Config{S3: srv.Options()})
			var remote *streamlog.Log
			s := newWindowScenarioLogs(t, uint64(500+seed), func() *streamlog.Log {
				l, err := streamlog.OpenStore(ctx, st, root, "w", windowFields)
				require.NoError(t, err)
				remote = l
				return l
			})
			// A batch written but never committed (its writer stopped
			// before the manifest): every event again, which would change
			// every count were it read.
			var again []streamlog.Event
			for _, ev := range s.events {
				if ev.ts != nil {
					again = append(again, streamlog.Event{Values: ev.vals, Time: *ev.ts, Offset: streamlog.NoOffset})
				}
			}
			p, err := remote.Prepare(streamlog.Batch{Stream: "push", Events: again})
			require.NoError(t, err)
			require.NotNil(t, p)
			upload(t, srv, s.dir, "repo/") // the entity file

			req := func(entities string) *Request {
				return &Request{Defs: s.defs, Entities: EntitiesFromParquet(entities), Features: []string{"w:*"}}
			}
			local := openEngine(t, s.dir)
			rr, err := local.TrainingSet(ctx, req(filepath.Join(s.dir, "entities.parquet")))
			require.NoError(t, err)
			_, want := readAll(t, rr)

			eng := openS3Engine(t, srv, root, nil)
			rr, err = eng.TrainingSet(ctx, req(s3URI(srv, "repo/entities.parquet")))
			require.NoError(t, err)
			_, got := readAll(t, rr)
			require.Len(t, got, len(want))
			for i := range want {
				require.Len(t, got[i], len(want[i]))
				for k, w := range want[i] {
					msg := fmt.Sprintf("row %d, %s", i, k)
					if wf, ok := w.(float64); ok {
						// Float sums depend on the order of addition.
						g, ok := got[i][k].(float64)
						require.True(t, ok, "%s: got %v", msg, got[i][k])
						requireClose(t, wf, g, msg)
						continue
					}
					require.Equal(t, w, got[i][k], msg)
				}
			}
			require.Positive(t, eng.CacheStats().Misses)
		})
	}
}

// A stream view under an s3:// data root whose bucket is missing, or
// whose credentials are refused, fails naming the view's log and the
// bucket, never a secret.
func TestS3StreamLogErrors(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	s := newWindowScenario(t, 3)
	req := &Request{Defs: s.defs, Entities: EntitiesFromParquet(filepath.Join(s.dir, "entities.parquet")), Features: []string{"w:*"}}

	eng := openS3Engine(t, srv, "s3://no-such-bucket/data", nil)
	_, err := eng.TrainingSet(ctx, req)
	require.ErrorIs(t, err, storage.ErrBucketNotFound)
	require.ErrorContains(t, err, "stream log of view w")
	require.ErrorContains(t, err, "s3://no-such-bucket/")

	eng = openS3Engine(t, srv, s3URI(srv, "data"), func(o *Options) {
		o.Storage.S3.Credentials = s3test.Credentials(s3test.AccessKey, "not-the-secret-0123456789")
	})
	_, err = eng.TrainingSet(ctx, req)
	require.Error(t, err)
	require.ErrorContains(t, err, "stream log of view w")
	require.NotContains(t, err.Error(), "not-the-secret")
	require.NotContains(t, err.Error(), s3test.SecretKey)
}
