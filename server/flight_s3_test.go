package server

import (
	"context"
	"os"
	"path"
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

// With an s3:// data root, a ticket's entities name objects below it (a
// key or a glob); paths that leave the root are refused, and a saved
// dataset is an object below it.
func TestFlightEntitiesUnderS3DataRoot(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	local := t.TempDir()
	writeParquet(t, filepath.Join(local, "features.parquet"), featureRows(t))
	writeParquet(t, filepath.Join(local, "ents-0.parquet"), entityRows(4))
	writeParquet(t, filepath.Join(local, "ents-1.parquet"), entityRows(2))
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	for _, name := range []string{"features.parquet", "ents-0.parquet", "ents-1.parquet"} {
		fh, err := os.Open(filepath.Join(local, name))
		require.NoError(t, err)
		_, err = b.Put(ctx, "root/"+name, fh)
		require.NoError(t, err)
		require.NoError(t, fh.Close())
	}
	root := "s3://" + srv.Bucket + "/root"

	defs, errs := registry.ParseDefinitions("flt", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(flightDefsYAML)})
	require.NoError(t, errs.Err())
	snap := &registry.Snapshot{Project: "flt", Version: 1, Hash: "sha256:x", Defs: defs}
	snapshot := func() *registry.Snapshot { return snap }
	off, err := offline.Open(offline.Options{DataRoot: root, Threads: 1, Storage: storage.Config{S3: srv.Options()},
		Cache: offline.CacheOptions{Dir: filepath.Join(t.TempDir(), "cache")}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, off.Close()) })
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
	ft := &flightTest{svc: svc, client: client}

	for _, c := range []struct {
		entities string
		rows     int64
	}{{"ents-0.parquet", 4}, {"ents-*.parquet", 6}} {
		rows, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Entities: c.entities, Features: []string{"stats:rate"}})
		require.NoError(t, err, c.entities)
		require.Equal(t, c.rows, rows, c.entities)
	}
	info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD,
		Cmd: ticket(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Entities: "ents-*.parquet", Features: []string{"stats:rate"}}).Ticket})
	require.NoError(t, err)
	require.NotEmpty(t, info.Schema)

	for _, c := range []struct {
		entities string
		code     codes.Code
		want     string
	}{
		{"../elsewhere/e.parquet", codes.InvalidArgument, `".."`},
		{"s3://other-bucket/e.parquet", codes.InvalidArgument, "relative to the data root"},
		{"/e.parquet", codes.InvalidArgument, "relative to the data root"},
		{"a/**/e.parquet", codes.InvalidArgument, "**"},
		{"missing.parquet", codes.InvalidArgument, root + "/missing.parquet"},
	} {
		_, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Entities: c.entities, Features: []string{"stats:rate"}})
		require.Error(t, err, c.entities)
		require.Equal(t, c.code, status.Code(err), "%s: %v", c.entities, err)
		require.ErrorContains(t, err, c.want)
	}

	_, err = ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "sets/train.arrow"})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	require.ErrorContains(t, err, root+"/sets/train.arrow")
}

// FuzzRemoteEntities: an entities path a ticket names under an s3:// data
// root is accepted only as a clean relative path below the root, and its
// URI is the root's with the path appended.
func FuzzRemoteEntities(f *testing.F) {
	for _, s := range []string{"e.parquet", "labels/*.parquet", "../e.parquet", "a/../../b", "/abs", "s3://x/y", "a//b", "a/./b", "a/**/b", "[", "a/", "", "ents-[0-9].parquet", "a\\b"} {
		f.Add(s)
	}
	svc, err := NewFlightService(nil, nil, nil, "s3://bucket/root/", Limits{})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, p string) {
		files, err := svc.remoteEntities(p)
		if err != nil {
			require.Equal(t, codes.InvalidArgument, status.Code(err))
			return
		}
		require.Len(t, files, 1)
		require.Equal(t, "s3://bucket/root/"+p, files[0])
		require.Equal(t, path.Clean(p), p)
		require.False(t, p == ".." || strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/"), p)
		require.NotContains(t, p, "://")
	})
}
