package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/wire"
)

// s3FlightTest is a Flight service whose data root is root/ in an s3test
// bucket.
type s3FlightTest struct {
	*flightTest
	srv    *s3test.Server
	bucket storage.Bucket // the test's own client of the bucket
	off    *offline.Engine
	tmp    string // the engine's temporary directory
}

// startS3FlightTest serves Flight over loopback with the data root
// s3://BUCKET/root (or root, when set), holding root/features.parquet
// (three drivers), and an engine that reaches the store with srv's
// options, edited by edit when set.
func startS3FlightTest(t *testing.T, srv *s3test.Server, root string, edit func(*storage.S3Options)) *s3FlightTest {
	t.Helper()
	if root == "" {
		root = "s3://" + srv.Bucket + "/root"
	}
	ctx := context.Background()
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	st := &s3FlightTest{srv: srv, bucket: b, tmp: filepath.Join(t.TempDir(), "tmp")}
	local := filepath.Join(t.TempDir(), "features.parquet")
	writeParquet(t, local, featureRows(t))
	st.upload(t, local, "root/features.parquet")

	defs, errs := registry.ParseDefinitions("flt", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(flightDefsYAML)})
	require.NoError(t, errs.Err())
	snap := &registry.Snapshot{Project: "flt", Version: 1, Hash: "sha256:x", Defs: defs}
	snapshot := func() *registry.Snapshot { return snap }
	so := srv.Options()
	if edit != nil {
		edit(&so)
	}
	off, err := offline.Open(offline.Options{DataRoot: root, Threads: 1, TempDirectory: st.tmp, Storage: storage.Config{S3: so},
		Cache: offline.CacheOptions{Dir: filepath.Join(t.TempDir(), "cache")}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, off.Close()) })
	st.off = off
	lookup := online.NewLookup(embedded(t), online.LookupOptions{Now: func() time.Time { return now }})
	svc, err := NewFlightService(off, lookup, snapshot, root, Limits{})
	require.NoError(t, err)
	s, err := New(Config{FlightAddr: "127.0.0.1:0", Flight: svc}, NewServing(lookup, snapshot, Limits{}, "test"),
		func(context.Context) error { return nil })
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	client, err := flight.NewClientWithMiddleware(s.FlightAddr().String(), nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close()) })
	st.flightTest = &flightTest{svc: svc, client: client, root: root}
	return st
}

// upload puts the local file as the object at key.
func (st *s3FlightTest) upload(t *testing.T, local, key string) {
	t.Helper()
	fh, err := os.Open(local)
	require.NoError(t, err)
	defer fh.Close()
	_, err = st.bucket.Put(context.Background(), key, fh)
	require.NoError(t, err)
}

// uploadDataset writes an Arrow file of batches × rows (writeDataset) and
// puts it at key.
func (st *s3FlightTest) uploadDataset(t *testing.T, key string, batches, rows int) {
	t.Helper()
	local := filepath.Join(t.TempDir(), "set.arrow")
	writeDataset(t, local, batches, rows)
	st.upload(t, local, key)
}

// uploadEntities writes n labelled entity rows (labelledEntities) as
// Parquet and puts them at key.
func (st *s3FlightTest) uploadEntities(t *testing.T, key string, n int) {
	t.Helper()
	local := filepath.Join(t.TempDir(), "ents.parquet")
	writeParquet(t, local, labelledEntities(n))
	st.upload(t, local, key)
}

// checkSavedObject checks a SavedDataset against the object it names.
func (st *s3FlightTest) checkSavedObject(t *testing.T, saved *wire.SavedDataset, out string, rows int64) {
	t.Helper()
	info, err := st.bucket.Stat(context.Background(), "root/"+out)
	require.NoError(t, err)
	require.Equal(t, wire.SavedDataset{Path: out, Format: offline.DatasetFormat(out), Rows: rows, Bytes: info.Size,
		Version: fmt.Sprintf("%d-%s", info.Size, info.ETag)}, *saved)
}

// noSaveTemp checks that no save left a temporary directory.
func (st *s3FlightTest) noSaveTemp(t *testing.T) {
	t.Helper()
	des, err := os.ReadDir(st.tmp)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	require.NoError(t, err)
	for _, de := range des {
		require.False(t, strings.HasPrefix(de.Name(), "quiver-save-"), "left behind: %s", de.Name())
	}
}

var rateOnly = []string{"stats:rate"}

// With an s3:// data root, save_training_set and DoPut upload the set
// below the root, answering the object's size and ETag identity; a
// dataset ticket reads it back with the values and order of the same
// training set streamed by DoGet and DoExchange, from a cached copy
// that is used again until the object is replaced.
func TestFlightS3SaveAndReadBack(t *testing.T) {
	st := startS3FlightTest(t, s3test.Start(t), "", nil)
	const rows = 1000
	st.uploadEntities(t, "root/ents.parquet", rows)
	want, err := st.getColumns(t, ticket(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: rateOnly, Entities: "ents.parquet"}))
	require.NoError(t, err)
	require.Len(t, want["label"], rows)
	require.Equal(t, "(null)", want["rate"][3], "driver 4 has no features")
	ents := labelledEntities(rows)
	defer ents.Release()
	require.Equal(t, want, st.exchangeColumns(t, ents))

	for _, out := range []string{"sets/train.arrow", "sets/train.parquet"} {
		saved, err := st.saveAction(t, "ents.parquet", out, false)
		require.NoError(t, err, out)
		st.checkSavedObject(t, saved, out, rows)
		got, err := st.getColumns(t, ticket(t, datasetCmd(out)))
		require.NoError(t, err, out)
		require.Equal(t, want, got, out)
		info, err := st.datasetInfo(t, out)
		require.NoError(t, err, out)
		require.EqualValues(t, rows, info.TotalRecords)
		c, err := wire.DecodeFlightCommand(info.Endpoint[0].Ticket.Ticket)
		require.NoError(t, err)
		require.Equal(t, saved.Version, c.Version, "tickets carry the version the save answered")
		schema, err := st.client.GetSchema(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: ticket(t, datasetCmd(out)).Ticket})
		require.NoError(t, err)
		require.Equal(t, info.Schema, schema.Schema)
	}
	saved, err := st.put(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: rateOnly, Out: "sets/put.arrow"}, ents)
	require.NoError(t, err)
	st.checkSavedObject(t, saved, "sets/put.arrow", rows)
	got, err := st.getColumns(t, ticket(t, datasetCmd("sets/put.arrow")))
	require.NoError(t, err)
	require.Equal(t, want, got)
	st.noSaveTemp(t)

	// Without overwrite a taken key is refused and the object kept; with
	// it, replaced.
	before, err := st.bucket.Stat(context.Background(), "root/sets/train.arrow")
	require.NoError(t, err)
	_, err = st.saveAction(t, "ents.parquet", "sets/train.arrow", false)
	require.Equal(t, codes.AlreadyExists, status.Code(err), "%v", err)
	after, err := st.bucket.Stat(context.Background(), "root/sets/train.arrow")
	require.NoError(t, err)
	require.Equal(t, before, after)
	_, err = st.saveAction(t, "ents.parquet", "sets/train.arrow", true)
	require.NoError(t, err)

	// Reads of an unchanged object use its cached copy; a replaced object
	// is fetched anew.
	stats := st.off.CacheStats()
	_, err = st.getColumns(t, ticket(t, datasetCmd("sets/put.arrow")))
	require.NoError(t, err)
	require.Equal(t, stats.Misses, st.off.CacheStats().Misses, "a cached copy of that version")
	st.uploadDataset(t, "root/sets/put.arrow", 2, 7)
	got, err = st.getColumns(t, ticket(t, datasetCmd("sets/put.arrow")))
	require.NoError(t, err)
	require.Len(t, got["x"], 14)
	require.Equal(t, stats.Misses+1, st.off.CacheStats().Misses, "the new version is fetched")

	for _, c := range []struct{ out, want string }{
		{"../x.arrow", `".."`},
		{"/x.arrow", "relative to the data root"},
		{"s3://other/x.arrow", "relative to the data root"},
		{"sets//x.arrow", `".."`},
		{"sets/*.arrow", "glob"},
		{"sets/x.csv", "extension"},
	} {
		_, err := st.saveAction(t, "ents.parquet", c.out, false)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", c.out, err)
		require.ErrorContains(t, err, c.want, c.out)
	}
}

// The endpoints of a dataset object cover every row exactly once, in
// order: a saved set of several units, and an uploaded Arrow file of
// more units than endpoints.
func TestFlightS3DatasetEndpoints(t *testing.T) {
	st := startS3FlightTest(t, s3test.Start(t), "", nil)
	const rows = 3*offline.SaveBatchRows + 1000
	st.uploadEntities(t, "root/ents.parquet", rows)
	for _, out := range []string{"sets/big.arrow", "sets/big.parquet"} {
		_, err := st.saveAction(t, "ents.parquet", out, false)
		require.NoError(t, err, out)
		whole, err := st.getColumns(t, ticket(t, datasetCmd(out)))
		require.NoError(t, err)
		require.Len(t, whole["label"], rows)
		info, err := st.datasetInfo(t, out)
		require.NoError(t, err)
		require.EqualValues(t, rows, info.TotalRecords)
		require.GreaterOrEqual(t, len(info.Endpoint), 4, out)
		require.Equal(t, whole, st.readEndpoints(t, info, out), out)
		labels := map[string]bool{}
		for _, l := range whole["label"] {
			require.False(t, labels[l], "label %s twice", l)
			labels[l] = true
		}
	}

	st.uploadDataset(t, "root/many.arrow", 100, 10)
	info, err := st.datasetInfo(t, "many.arrow")
	require.NoError(t, err)
	require.Len(t, info.Endpoint, maxDatasetEndpoints)
	require.EqualValues(t, 1000, info.TotalRecords)
	whole, err := st.getColumns(t, ticket(t, datasetCmd("many.arrow")))
	require.NoError(t, err)
	require.Equal(t, whole, st.readEndpoints(t, info, "many.arrow"))
}

// A dataset object replaced between GetFlightInfo and DoGet is refused
// with Aborted, before its new version is fetched; a new flight info
// reads the new object.
func TestFlightS3DatasetReplacedAfterInfo(t *testing.T) {
	st := startS3FlightTest(t, s3test.Start(t), "", nil)
	st.uploadDataset(t, "root/set.arrow", 4, 10)
	info, err := st.datasetInfo(t, "set.arrow")
	require.NoError(t, err)
	require.Len(t, info.Endpoint, 4)
	obj, err := st.bucket.Stat(context.Background(), "root/set.arrow")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf(`{"kind":"dataset","path":"set.arrow","range":[1,2],"version":"%d-%s"}`, obj.Size, obj.ETag),
		string(info.Endpoint[1].Ticket.Ticket), "the ticket's JSON")
	got, err := st.getColumns(t, info.Endpoint[1].Ticket)
	require.NoError(t, err)
	require.Len(t, got["x"], 10)

	st.uploadDataset(t, "root/set.arrow", 4, 11)
	misses := st.off.CacheStats().Misses
	_, err = st.getColumns(t, info.Endpoint[1].Ticket)
	require.Equal(t, codes.Aborted, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `dataset "set.arrow" was replaced since its flight info was read`)
	require.Equal(t, misses, st.off.CacheStats().Misses, "nothing fetched for a stale ticket")

	info, err = st.datasetInfo(t, "set.arrow")
	require.NoError(t, err)
	got, err = st.getColumns(t, info.Endpoint[1].Ticket)
	require.NoError(t, err, "the new flight info reads the new object")
	require.Len(t, got["x"], 11)
}

// A missing dataset object, or a data root whose bucket is missing, is
// NotFound naming it; a path that leaves the root or is a glob is
// InvalidArgument.
func TestFlightS3DatasetNotFound(t *testing.T) {
	srv := s3test.Start(t)
	st := startS3FlightTest(t, srv, "", nil)
	_, err := st.datasetInfo(t, "sets/missing.arrow")
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "s3://"+srv.Bucket+"/root/sets/missing.arrow")
	_, err = st.doGet(t, datasetCmd("sets/missing.parquet"))
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `"sets/missing.parquet"`)
	for _, c := range []struct{ path, want string }{
		{"../x.arrow", `".."`},
		{"s3://other-bucket/x.arrow", "relative to the data root"},
		{"sets/*.arrow", "glob"},
	} {
		_, err := st.datasetInfo(t, c.path)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", c.path, err)
		require.ErrorContains(t, err, c.want)
	}

	other := startS3FlightTest(t, srv, "s3://no-such-bucket/root", nil)
	_, err = other.datasetInfo(t, "set.arrow")
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "no-such-bucket")
	require.ErrorContains(t, err, "bucket does not exist")
}

// Wrong credentials fail reads and saves with PermissionDenied, and no
// message holds a secret.
func TestFlightS3WrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	good := startS3FlightTest(t, srv, "", nil)
	good.uploadDataset(t, "root/set.arrow", 2, 5)
	good.uploadEntities(t, "root/ents.parquet", 10)
	const wrong = "wrong-secret-abcdefghijklmnopqrstuvwxyz0123"
	st := startS3FlightTest(t, srv, "", func(o *storage.S3Options) {
		o.Credentials = s3test.Credentials(s3test.AccessKey, wrong)
		o.MaxRetries = -1
	})
	_, err := st.datasetInfo(t, "set.arrow")
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err2 := st.doGet(t, datasetCmd("set.arrow"))
	require.Equal(t, codes.PermissionDenied, status.Code(err2), "%v", err2)
	ents := labelledEntities(10)
	defer ents.Release()
	_, err3 := st.put(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: rateOnly, Out: "sets/x.arrow"}, ents)
	require.Error(t, err3)
	_, err4 := st.saveAction(t, "ents.parquet", "sets/y.arrow", true)
	require.Error(t, err4)
	for _, err := range []error{err, err2, err3, err4} {
		require.NotContains(t, err.Error(), wrong)
		require.NotContains(t, err.Error(), s3test.SecretKey)
	}
	_, err = good.bucket.Stat(context.Background(), "root/sets/x.arrow")
	require.ErrorIs(t, err, storage.ErrNotFound)
}

// A save whose upload fails, by one PUT or a multipart upload, leaves no
// object and no temporary file, and says what failed.
func TestFlightS3FailedUpload(t *testing.T) {
	srv := s3test.Start(t)
	st := startS3FlightTest(t, srv, "", func(o *storage.S3Options) { o.MaxRetries = -1 })
	st.uploadEntities(t, "root/small.parquet", 100)
	st.uploadEntities(t, "root/big.parquet", 3*offline.SaveBatchRows) // an Arrow set above the 5 MiB part size
	for _, c := range []struct {
		ents, out string
		match     func(s3test.Request) bool
	}{
		{"small.parquet", "sets/small.arrow", func(r s3test.Request) bool {
			return r.Method == "PUT" && strings.HasSuffix(r.Path, "/sets/small.arrow")
		}},
		{"big.parquet", "sets/big.arrow", func(r s3test.Request) bool { return r.Method == "PUT" && strings.Contains(r.Query, "partNumber=2") }},
	} {
		srv.ResetRequests()
		srv.FailNextMatching(1000, 500, c.match)
		_, err := st.saveAction(t, c.ents, c.out, true)
		require.Equal(t, codes.Unavailable, status.Code(err), "%s: %v", c.out, err)
		require.ErrorContains(t, err, "s3://"+srv.Bucket+"/root/"+c.out)
		srv.FailNextMatching(0, 500, nil)
		_, err = st.bucket.Stat(context.Background(), "root/"+c.out)
		require.ErrorIs(t, err, storage.ErrNotFound, c.out)
		objs, err := st.bucket.List(context.Background(), "root/sets/")
		require.NoError(t, err)
		require.Empty(t, objs)
		st.noSaveTemp(t)
		if c.out == "sets/big.arrow" {
			var multipart, aborted bool
			for _, r := range srv.Requests() {
				multipart = multipart || (r.Method == "POST" && strings.Contains(r.Query, "uploads"))
				aborted = aborted || (r.Method == "DELETE" && strings.Contains(r.Query, "uploadId"))
			}
			require.True(t, multipart, "a multipart upload")
			require.True(t, aborted, "aborted")
		}
	}
	// The store answering again, the same saves succeed.
	for _, out := range []string{"sets/small.arrow", "sets/big.arrow"} {
		ents := strings.TrimSuffix(filepath.Base(out), ".arrow") + ".parquet"
		_, err := st.saveAction(t, ents, out, false)
		require.NoError(t, err, out)
	}
}

// Any out or dataset path below an s3:// data root either names a key
// below the root's prefix, with no empty, "." or ".." segment and no
// glob character, or is refused with InvalidArgument.
func FuzzRemoteURI(f *testing.F) {
	for _, p := range []string{"sets/a.arrow", "a.parquet", "../x.arrow", "a//b.arrow", "a/./b.arrow", "s3://x/y.arrow",
		"/abs.arrow", "sets/*.arrow", "", "a/", "é/ü.arrow", "a\\..\\b"} {
		f.Add(p)
	}
	svc := &FlightService{dataRoot: "s3://bucket/root", remoteRoot: true}
	f.Fuzz(func(t *testing.T, p string) {
		uri, err := svc.remoteURI("dataset", p)
		if err != nil {
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%q: %v", p, err)
			return
		}
		require.Equal(t, "s3://bucket/root/"+p, uri)
		require.False(t, storage.IsGlob(p), p)
		for _, seg := range strings.Split(p, "/") {
			require.NotContains(t, []string{"", ".", ".."}, seg, p)
		}
	})
}
