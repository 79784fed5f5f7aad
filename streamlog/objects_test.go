package streamlog

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/storage"
)

// s3Log opens the log of view v below s3://<bucket>/root on srv.
func s3Log(t *testing.T, srv *s3test.Server) (*storage.Store, string, *Log) {
	t.Helper()
	st := storage.NewStore(storage.Config{S3: srv.Options()})
	root := "s3://" + srv.Bucket + "/root"
	l, err := OpenStore(context.Background(), st, root, "v", fields)
	require.NoError(t, err)
	return st, root, l
}

// keys lists every key below the view's prefix.
func keys(t *testing.T, l *Log) []string {
	t.Helper()
	objs, err := l.bucket.List(context.Background(), l.prefix)
	require.NoError(t, err)
	var out []string
	for _, o := range objs {
		out = append(out, strings.TrimPrefix(o.Key, l.prefix))
	}
	return out
}

func TestObjectLogAppendsAndReadsBack(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	st, root, l := s3Log(t, srv)
	require.Equal(t, "root/_stream/v/", l.prefix)
	day := time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC)
	m, err := l.Append(Batch{Stream: "trips", Partition: 3, Events: []Event{
		ev(10, 1, 5.0, day), ev(11, 2, nil, day.Add(2*time.Minute)), ev(12, 1, 7.5, day.Add(30*time.Second)),
	}})
	require.NoError(t, err)
	require.Len(t, m.Files, 2)
	require.True(t, strings.HasPrefix(m.Files[0].Path, "date=2026-11-22/"+m.Batch+"-0-"), m.Files[0].Path)
	require.True(t, strings.HasPrefix(m.Files[1].Path, "date=2026-11-23/"+m.Batch+"-1-"), m.Files[1].Path)

	ms, err := ReadManifests(ctx, st, root, "v")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, m.Files, ms[0].Files)

	b, objs, err := Objects(ctx, st, root, "v")
	require.NoError(t, err)
	require.Len(t, objs, 2)
	require.Equal(t, l.prefix+m.Files[0].Path, objs[0].Key)
	for i, o := range objs {
		obj, err := b.Open(ctx, o.Key)
		require.NoError(t, err)
		pf, err := file.NewParquetReader(obj)
		require.NoError(t, err)
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		require.NoError(t, err)
		tbl, err := fr.ReadTable(ctx)
		require.NoError(t, err)
		require.Equal(t, m.Files[i].Rows, tbl.NumRows())
		for j, f := range l.Schema().Fields() {
			require.Equal(t, f.Name, tbl.Schema().Field(j).Name)
			require.True(t, arrow.TypeEqual(f.Type, tbl.Schema().Field(j).Type), "%s is %s", f.Name, tbl.Schema().Field(j).Type)
		}
		tbl.Release()
		require.NoError(t, pf.Close())
	}
}

// Offsets come from the manifests, so a writer that opens the log again
// (after a restart) learns what is logged.
func TestObjectLogOffsetsAfterRestart(t *testing.T) {
	srv := s3test.Start(t)
	st, root, l := s3Log(t, srv)
	day := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, b := range []Batch{
		{Stream: "trips", Partition: 3, Events: []Event{ev(10, 1, 1.0, day), ev(12, 1, 1.0, day)}},
		{Stream: "trips", Partition: 3, Events: []Event{ev(13, 1, 1.0, day)}},
		{Stream: "trips", Partition: 0, Events: []Event{ev(4, 1, 1.0, day)}},
		{Stream: "push", Events: []Event{ev(NoOffset, 1, 1.0, day)}},
	} {
		_, err := l.Append(b)
		require.NoError(t, err)
	}
	again, err := OpenStore(context.Background(), st, root, "v", fields)
	require.NoError(t, err)
	offs, err := again.Offsets()
	require.NoError(t, err)
	require.Equal(t, map[Position]int64{{Stream: "trips", Partition: 3}: 13, {Stream: "trips", Partition: 0}: 4}, offs)
}

// A writer that stops between its data objects and its manifest leaves
// no visible batch, only orphans, which Recover removes once they are
// older than the grace period.
func TestObjectLogCrashBeforeManifestLeavesOrphansRecoverRemoves(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	st, root, l := s3Log(t, srv)
	day := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	kept, err := l.Append(Batch{Stream: "trips", Events: []Event{ev(1, 1, 1.0, day)}})
	require.NoError(t, err)
	p, err := l.Prepare(Batch{Stream: "trips", Events: []Event{ev(2, 1, 1.0, day), ev(3, 1, 1.0, day.Add(24*time.Hour))}})
	require.NoError(t, err)
	require.Len(t, p.m.Files, 2)
	// The process stops here: neither Commit nor Abort runs.
	_, objs, err := Objects(ctx, st, root, "v")
	require.NoError(t, err)
	require.Len(t, objs, 1)
	require.Equal(t, l.prefix+kept.Files[0].Path, objs[0].Key)
	offs, err := l.Offsets()
	require.NoError(t, err)
	require.Equal(t, int64(1), offs[Position{Stream: "trips"}])
	require.Len(t, keys(t, l), 4)

	n, err := l.Recover(time.Hour)
	require.NoError(t, err)
	require.Zero(t, n, "young orphans may be a batch being committed")
	n, err = l.Recover(0)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.ElementsMatch(t, []string{kept.Files[0].Path, "_manifests/" + kept.Batch + ".json"}, keys(t, l))
}

// A manifest PUT that the store refuses fails the append; the batch's
// objects are removed, and the log is as before.
func TestObjectLogRefusedManifestLeavesNothing(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	st, root, l := s3Log(t, srv)
	day := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	srv.FailNextMatching(1, http.StatusForbidden, func(r s3test.Request) bool {
		return r.Method == http.MethodPut && strings.Contains(r.Path, "/_manifests/")
	})
	_, err := l.Append(Batch{Stream: "trips", Events: []Event{ev(1, 1, 1.0, day)}})
	require.Error(t, err)
	require.ErrorContains(t, err, "stream log of view v")
	require.Empty(t, keys(t, l))
	ms, err := ReadManifests(ctx, st, root, "v")
	require.NoError(t, err)
	require.Empty(t, ms)

	// A failure the client retries commits once.
	srv.FailNextMatching(1, http.StatusInternalServerError, func(r s3test.Request) bool {
		return r.Method == http.MethodPut && strings.Contains(r.Path, "/_manifests/")
	})
	m, err := l.Append(Batch{Stream: "trips", Events: []Event{ev(1, 1, 1.0, day)}})
	require.NoError(t, err)
	_, objs, err := Objects(ctx, st, root, "v")
	require.NoError(t, err)
	require.Len(t, objs, 1)
	require.Equal(t, l.prefix+m.Files[0].Path, objs[0].Key)
}

// Two writers committing the same stream position: exactly one commits,
// the other gets ErrCommitted and removes only its own objects.
func TestObjectLogTwoWritersOfOnePositionOneWins(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	st, root, a := s3Log(t, srv)
	b, err := OpenStore(ctx, st, root, "v", fields)
	require.NoError(t, err)
	day := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	batch := Batch{Stream: "trips", Partition: 1, Events: []Event{ev(5, 1, 1.0, day), ev(6, 2, 2.0, day)}}
	pa, err := a.Prepare(batch)
	require.NoError(t, err)
	pb, err := b.Prepare(batch)
	require.NoError(t, err)
	require.NotEqual(t, pa.m.Files[0].Path, pb.m.Files[0].Path)

	var wg sync.WaitGroup
	ms := make([]*Manifest, 2)
	errs := make([]error, 2)
	for i, p := range []*Prepared{pa, pb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms[i], errs[i] = p.Commit()
			if errs[i] != nil {
				require.NoError(t, p.Abort())
			}
		}()
	}
	wg.Wait()
	won := 0
	var winner *Manifest
	for i := range errs {
		if errs[i] == nil {
			won++
			winner = ms[i]
			continue
		}
		require.True(t, errors.Is(errs[i], ErrCommitted), "%v", errs[i])
	}
	require.Equal(t, 1, won)
	got, err := ReadManifests(ctx, st, root, "v")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, winner.Files, got[0].Files)
	_, objs, err := Objects(ctx, st, root, "v")
	require.NoError(t, err)
	require.Len(t, objs, 1)
	require.ElementsMatch(t, []string{winner.Files[0].Path, "_manifests/" + winner.Batch + ".json"}, keys(t, a))
}

// A missing bucket or refused credentials are reported when the log is
// opened, by address and never with a secret.
func TestObjectLogMissingBucketAndBadCredentials(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	st := storage.NewStore(storage.Config{S3: srv.Options()})
	_, err := OpenStore(ctx, st, "s3://no-such-bucket/root", "v", fields)
	require.ErrorIs(t, err, storage.ErrBucketNotFound)
	require.ErrorContains(t, err, "stream log of view v")
	require.ErrorContains(t, err, "s3://no-such-bucket/")

	opts := srv.Options()
	opts.Credentials = s3test.Credentials(s3test.AccessKey, "wrong-secret-0123456789")
	bad := storage.NewStore(storage.Config{S3: opts})
	_, err = OpenStore(ctx, bad, "s3://"+srv.Bucket+"/root", "v", fields)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "wrong-secret")
	require.NotContains(t, err.Error(), s3test.SecretKey)
	_, err = ReadManifests(ctx, bad, "s3://"+srv.Bucket+"/root", "v")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "wrong-secret")

	_, err = OpenStore(ctx, nil, "s3://"+srv.Bucket+"/root", "v", fields)
	require.ErrorContains(t, err, "no storage settings")
}

// A manifest create that the store performed but whose answer was lost
// (the connection cut before the response) is a commit: the retry finds
// the key taken, reads the manifest back and knows it for its own, and
// the batch's objects stay.
func TestObjectLogCommitWhoseAnswerWasLost(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	proxy := s3test.StartProxy(t, srv.Endpoint)
	opts := srv.Options()
	opts.Endpoint = proxy.Endpoint
	st := storage.NewStore(storage.Config{S3: opts})
	root := "s3://" + srv.Bucket + "/root"
	l, err := OpenStore(ctx, st, root, "v", fields)
	require.NoError(t, err)
	day := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	p, err := l.Prepare(Batch{Stream: "trips", Events: []Event{ev(7, 1, 1.0, day)}})
	require.NoError(t, err)
	srv.ResetRequests()
	proxy.Cut(1, 1) // the manifest PUT reaches the store; its answer does not
	m, err := p.Commit()
	require.NoError(t, err)
	require.Equal(t, 1, proxy.Cuts())
	var puts []int
	for _, r := range srv.Requests() {
		if r.Method == http.MethodPut {
			puts = append(puts, r.Status)
		}
	}
	require.Equal(t, []int{http.StatusOK, http.StatusPreconditionFailed}, puts, "the create, then its retry")
	require.NoError(t, p.Abort(), "a committed batch aborts to nothing")
	_, objs, err := Objects(ctx, st, root, "v")
	require.NoError(t, err)
	require.Len(t, objs, 1)
	require.Equal(t, l.prefix+m.Files[0].Path, objs[0].Key)
}

// Manifests are read several at once and come back in batch-name order;
// one that does not decode fails the read, by name.
func TestObjectLogManifestsInOrderAndCorruptOneNamed(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	st, root, l := s3Log(t, srv)
	day := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := range 20 {
		_, err := l.Append(Batch{Stream: "trips", Events: []Event{ev(int64(i), 1, 1.0, day)}})
		require.NoError(t, err)
	}
	ms, err := ReadManifests(ctx, st, root, "v")
	require.NoError(t, err)
	require.Len(t, ms, 20)
	for i, m := range ms {
		require.Equal(t, int64(i), m.FirstOffset)
	}
	_, err = l.bucket.Put(ctx, l.prefix+"_manifests/trips-p00000-00000000000000000009-00000000000000000009x.json", strings.NewReader("{"))
	require.NoError(t, err)
	_, err = ReadManifests(ctx, st, root, "v")
	require.ErrorContains(t, err, "stream log of view v: manifest trips-p00000-00000000000000000009-00000000000000000009x.json")
}
