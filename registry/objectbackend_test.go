package registry

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/storage"
)

// registryCase is one backend under the registry suite, with a way to
// write raw objects beside (or over) its versions, as another program or
// a damaged store would.
type registryCase struct {
	name string
	open func(t *testing.T) registryUnderTest
}

type registryUnderTest struct {
	// backend returns a fresh Backend over the same registry, as another
	// process would open it.
	backend func() Backend
	// put writes data at rel, a slash-separated path below the registry's
	// root ("versions/00000000000000000002.json").
	put func(rel string, data []byte)
	// where is the address a message names for rel; "" when the backend
	// names no location (the directory backend).
	where func(rel string) string
}

func objectCase(t *testing.T, b storage.Bucket, prefix string) registryUnderTest {
	return registryUnderTest{
		backend: func() Backend { return NewObjectBackend(b, prefix) },
		put: func(rel string, data []byte) {
			_, err := b.Put(context.Background(), path.Join(prefix, rel), strings.NewReader(string(data)))
			require.NoError(t, err)
		},
		where: func(rel string) string { return b.URI(path.Join(prefix, rel)) },
	}
}

func s3Case(t *testing.T, srv *s3test.Server) registryUnderTest {
	b, err := storage.NewS3(context.Background(), srv.Bucket, srv.Options())
	require.NoError(t, err)
	return objectCase(t, b, "registries/rides")
}

func registryCases() []registryCase {
	return []registryCase{
		{"dir", func(t *testing.T) registryUnderTest {
			dir := t.TempDir()
			return registryUnderTest{
				backend: func() Backend { return NewDirBackend(dir) },
				put: func(rel string, data []byte) {
					p := filepath.Join(dir, filepath.FromSlash(rel))
					require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
					require.NoError(t, os.WriteFile(p, data, 0o644))
				},
				where: func(string) string { return "" },
			}
		}},
		{"object-local", func(t *testing.T) registryUnderTest {
			b, err := storage.NewLocal(t.TempDir())
			require.NoError(t, err)
			return objectCase(t, b, "registry")
		}},
		{"object-s3", func(t *testing.T) registryUnderTest { return s3Case(t, s3test.Start(t)) }},
		// MinIO when a binary was built (scripts/minio.sh); skipped otherwise.
		{"object-minio", func(t *testing.T) registryUnderTest { return s3Case(t, s3test.StartMinIO(t)) }},
	}
}

// TestRegistryBackends runs one suite against the directory backend and
// the object backend over the local file system, the S3 test server and
// MinIO.
func TestRegistryBackends(t *testing.T) {
	for _, rc := range registryCases() {
		t.Run(rc.name, func(t *testing.T) {
			t.Run("RoundTrip", func(t *testing.T) { testRegistryRoundTrip(t, rc.open(t)) })
			t.Run("ConcurrentApplies", func(t *testing.T) { testRegistryConcurrentApplies(t, rc.open(t)) })
			t.Run("ConcurrentCreate", func(t *testing.T) { testRegistryConcurrentCreate(t, rc.open(t)) })
			t.Run("UnrelatedKeys", func(t *testing.T) { testRegistryUnrelatedKeys(t, rc.open(t)) })
			t.Run("CorruptVersion", func(t *testing.T) { testRegistryCorruptVersion(t, rc.open(t)) })
		})
	}
}

func testRegistryRoundTrip(t *testing.T, r registryUnderTest) {
	ctx := context.Background()
	store := NewStore(r.backend())
	_, err := store.Latest(ctx)
	require.ErrorIs(t, err, ErrNoSnapshot)

	clock := func() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }
	r1, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{Commit: "abc", Author: "ci", Now: clock})
	require.NoError(t, err)
	require.True(t, r1.Written)
	require.EqualValues(t, 1, r1.Snapshot.Version)
	same, err := store.Apply(ctx, testDefs(t, "60m"), ApplyOptions{Now: clock})
	require.NoError(t, err)
	require.False(t, same.Written, "unchanged definitions write nothing")
	r2, err := store.Apply(ctx, testDefs(t, "2h"), ApplyOptions{Now: clock})
	require.NoError(t, err)
	require.EqualValues(t, 2, r2.Snapshot.Version)

	// Another process reads what this one wrote.
	other := NewStore(r.backend())
	got1, err := other.Get(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, r1.Snapshot.Hash, got1.Hash)
	require.Equal(t, Duration(time.Hour), got1.Defs.FeatureView("v").TTL)
	require.Equal(t, "abc", got1.Commit)
	require.Equal(t, clock(), got1.CreatedAt)
	latest, err := other.Latest(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, latest.Version)
	require.Equal(t, Duration(2*time.Hour), latest.Defs.FeatureView("v").TTL)
	hist, err := other.History(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, []int64{hist[0].Version, hist[1].Version})

	_, err = other.Get(ctx, 7)
	require.ErrorIs(t, err, ErrVersionNotFound)

	err = r.backend().Create(ctx, 2, []byte("another snapshot"))
	require.ErrorIs(t, err, ErrVersionExists)
	if where := r.where(versionRel(2)); where != "" {
		require.ErrorContains(t, err, where)
	}
	got2, err := other.Get(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, r2.Snapshot.Hash, got2.Hash, "a refused create changes nothing")
}

func versionRel(v int64) string { return fmt.Sprintf("versions/%020d.json", v) }

// testRegistryConcurrentApplies: many applies of different content at
// once, each through its own backend (as separate processes would), each
// get their own version, and every version holds what its apply wrote.
func testRegistryConcurrentApplies(t *testing.T, r registryUnderTest) {
	ctx := context.Background()
	const n = 12
	var wg sync.WaitGroup
	results := make([]*ApplyResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := NewStore(r.backend())
			<-start
			results[i], errs[i] = store.Apply(ctx, testDefs(t, fmt.Sprintf("%dh", i+1)), ApplyOptions{AllowBreaking: true})
		}()
	}
	close(start)
	wg.Wait()

	byVersion := map[int64]int{}
	for i := range n {
		require.NoError(t, errs[i])
		require.True(t, results[i].Written)
		byVersion[results[i].Snapshot.Version] = i
	}
	require.Len(t, byVersion, n, "every apply got a distinct version")
	store := NewStore(r.backend())
	hist, err := store.History(ctx)
	require.NoError(t, err)
	require.Len(t, hist, n, "no version was lost")
	for i, h := range hist {
		require.EqualValues(t, i+1, h.Version, "versions are contiguous")
		snap, err := store.Get(ctx, h.Version)
		require.NoError(t, err)
		want := Duration(time.Duration(byVersion[h.Version]+1) * time.Hour)
		require.Equal(t, want, snap.Defs.FeatureView("v").TTL, "version %d holds what its apply wrote", h.Version)
		require.Equal(t, results[byVersion[h.Version]].Snapshot.Hash, snap.Hash)
	}
}

// testRegistryConcurrentCreate: of concurrent creators of one version
// exactly one wins and the version holds its bytes.
func testRegistryConcurrentCreate(t *testing.T, r registryUnderTest) {
	ctx := context.Background()
	const creators = 12
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, creators)
	for i := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := r.backend()
			<-start
			errs[i] = b.Create(ctx, 3, []byte(fmt.Sprintf("snapshot of creator %02d", i)))
		}()
	}
	close(start)
	wg.Wait()
	won := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, won, "creators %d and %d both wrote version 3", won, i)
			won = i
			continue
		}
		require.ErrorIs(t, err, ErrVersionExists)
	}
	require.NotEqual(t, -1, won, "one creator writes the version")
	data, err := r.backend().Read(ctx, 3)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("snapshot of creator %02d", won), string(data))
	vs, err := r.backend().Versions(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{3}, vs)
}

// testRegistryUnrelatedKeys: objects that are not versions are ignored.
func testRegistryUnrelatedKeys(t *testing.T, r registryUnderTest) {
	ctx := context.Background()
	store := NewStore(r.backend())
	_, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	for _, rel := range []string{
		"README.txt",
		"versions/notes.json",
		"versions/00000000000000000002.json.bak",
		"versions/000000000000000002.json",   // another width
		"versions/00000000000000000000.json", // version 0
		"versions/0000000000000000000x.json", // not a number
		"versions/-0000000000000000003.json", // a sign
		"versions/archive/00000000000000000004.json",
	} {
		r.put(rel, []byte("not a snapshot"))
	}
	vs, err := r.backend().Versions(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, vs)
	hist, err := store.History(ctx)
	require.NoError(t, err)
	require.Len(t, hist, 1)
	res, err := store.Apply(ctx, testDefs(t, "2h"), ApplyOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Snapshot.Version)
}

// testRegistryCorruptVersion: a truncated, empty or edited version is
// reported with its number (and its key, where the backend names one),
// and the versions around it stay readable.
func testRegistryCorruptVersion(t *testing.T, r registryUnderTest) {
	ctx := context.Background()
	store := NewStore(r.backend())
	_, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	res, err := store.Apply(ctx, testDefs(t, "2h"), ApplyOptions{})
	require.NoError(t, err)
	good, err := encodeSnapshot(res.Snapshot)
	require.NoError(t, err)
	require.Contains(t, string(good), `"ttl": "2h"`)

	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"truncated": {good[:len(good)/2], "registry version 2 is unreadable"},
		"empty":     {nil, "registry version 2 is unreadable"},
		"edited":    {[]byte(strings.Replace(string(good), `"ttl": "2h"`, `"ttl": "3h"`, 1)), "registry version 2 is corrupt: content hash"},
		"renumbered": {[]byte(strings.Replace(string(good), `"version": 2`, `"version": 5`, 1)),
			"registry version 2 is corrupt: it says it is version 5"},
	} {
		t.Run(name, func(t *testing.T) {
			r.put(versionRel(2), tc.data)
			_, err := store.Latest(ctx)
			require.ErrorContains(t, err, tc.want)
			if where := r.where(versionRel(2)); where != "" {
				require.ErrorContains(t, err, where)
			}
			_, err = store.History(ctx)
			require.ErrorContains(t, err, tc.want)
			v1, err := store.Get(ctx, 1)
			require.NoError(t, err)
			require.Equal(t, Duration(time.Hour), v1.Defs.FeatureView("v").TTL)
		})
	}
}

// forEachS3 runs test against the S3 test server and MinIO (skipped when
// not built).
func forEachS3(t *testing.T, test func(t *testing.T, srv *s3test.Server)) {
	t.Run("gofakes3", func(t *testing.T) { test(t, s3test.Start(t)) })
	t.Run("minio", func(t *testing.T) { test(t, s3test.StartMinIO(t)) })
}

func TestOpenStoreS3(t *testing.T) {
	forEachS3(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		sc := storage.Config{S3: srv.Options()}
		store, err := OpenStore(ctx, "s3://"+srv.Bucket+"/teams/rides/", sc)
		require.NoError(t, err)
		res, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
		require.NoError(t, err)
		require.EqualValues(t, 1, res.Snapshot.Version)

		// The version is where the layout says, and the trailing slash of
		// the location does not matter.
		b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
		require.NoError(t, err)
		info, err := b.Stat(ctx, "teams/rides/versions/00000000000000000001.json")
		require.NoError(t, err)
		require.Positive(t, info.Size)
		again, err := OpenStore(ctx, "s3://"+srv.Bucket+"/teams/rides", sc)
		require.NoError(t, err)
		snap, err := again.Latest(ctx)
		require.NoError(t, err)
		require.Equal(t, res.Snapshot.Hash, snap.Hash)

		// A registry at the bucket's root, beside it, is another registry.
		root, err := OpenStore(ctx, "s3://"+srv.Bucket, sc)
		require.NoError(t, err)
		v, err := root.LatestVersion(ctx)
		require.NoError(t, err)
		require.Zero(t, v)
	})
}

func TestS3RegistryMissingBucket(t *testing.T) {
	forEachS3(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		store, err := OpenStore(ctx, "s3://no-such-bucket/registry", storage.Config{S3: srv.Options()})
		require.NoError(t, err, "opening makes no request")
		_, err = store.Latest(ctx)
		require.ErrorIs(t, err, storage.ErrBucketNotFound)
		require.ErrorContains(t, err, "list registry versions: list s3://no-such-bucket/registry/versions/")
		_, err = store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
		require.ErrorIs(t, err, storage.ErrBucketNotFound)
		require.ErrorContains(t, err, "s3://no-such-bucket/registry/")
	})
}

func TestS3RegistryWrongCredentialsNameNoSecret(t *testing.T) {
	forEachS3(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		const wrongSecret = "wrong-secret-Vb7nQ2xR9kP4mT6wZ3cD"
		opts := srv.Options()
		opts.Credentials = s3test.Credentials(s3test.AccessKey, wrongSecret)
		opts.MaxRetries = -1
		store, err := OpenStore(ctx, "s3://"+srv.Bucket+"/registry", storage.Config{S3: opts})
		require.NoError(t, err)
		_, err = store.Latest(ctx)
		require.Error(t, err)
		require.ErrorContains(t, err, "s3://"+srv.Bucket+"/registry/versions/")
		require.ErrorContains(t, err, "403")
		require.NotContains(t, err.Error(), wrongSecret)
		require.NotContains(t, err.Error(), s3test.SecretKey)

		// Writes fail the same way, and leave nothing.
		b, err := storage.NewS3(ctx, srv.Bucket, opts)
		require.NoError(t, err)
		err = NewObjectBackend(b, "registry").Create(ctx, 1, []byte("x"))
		require.Error(t, err)
		require.ErrorContains(t, err, "s3://"+srv.Bucket+"/registry/versions/00000000000000000001.json")
		require.NotContains(t, err.Error(), wrongSecret)
		good, err := OpenStore(ctx, "s3://"+srv.Bucket+"/registry", storage.Config{S3: srv.Options()})
		require.NoError(t, err)
		v, err := good.LatestVersion(ctx)
		require.NoError(t, err)
		require.Zero(t, v)
	})
}

// A create whose PUT the store carried out but whose answer was lost is
// retried and finds the key taken: with the same bytes there, it was this
// write, and Create succeeds; with other bytes it is another writer's.
func TestObjectBackendCreateFindsItsOwnWrite(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	ob := NewObjectBackend(b, "registry")
	require.NoError(t, ob.Create(ctx, 1, []byte("snapshot one")))
	require.NoError(t, ob.Create(ctx, 1, []byte("snapshot one")), "the same bytes are this write")
	err = ob.Create(ctx, 1, []byte("snapshot two"))
	require.ErrorIs(t, err, ErrVersionExists)
	require.ErrorContains(t, err, "s3://quiver-test/registry/versions/00000000000000000001.json")
	data, err := ob.Read(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "snapshot one", string(data))
}

// Transient store failures (5xx) are retried by the client: an apply
// still writes exactly one version.
func TestS3RegistryApplyRetriesTransientFailures(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	store, err := OpenStore(ctx, "s3://"+srv.Bucket+"/registry", storage.Config{S3: srv.Options()})
	require.NoError(t, err)
	srv.FailNextMatching(2, 503, func(r s3test.Request) bool { return r.Method == "PUT" })
	res, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	require.True(t, res.Written)
	require.EqualValues(t, 1, res.Snapshot.Version)
	hist, err := store.History(ctx)
	require.NoError(t, err)
	require.Len(t, hist, 1)
}

func TestObjectBackendKeys(t *testing.T) {
	b, err := storage.NewLocal(t.TempDir())
	require.NoError(t, err)
	for prefix, want := range map[string]string{
		"":           "versions/00000000000000000042.json",
		"reg":        "reg/versions/00000000000000000042.json",
		"reg/":       "reg/versions/00000000000000000042.json",
		"a/b/prod//": "a/b/prod/versions/00000000000000000042.json",
	} {
		require.Equal(t, want, NewObjectBackend(b, prefix).Key(42), "prefix %q", prefix)
	}
}

// FuzzParseVersionName: a listed object's name is read as a version only
// when it is exactly the name Key gives that version.
func FuzzParseVersionName(f *testing.F) {
	for _, s := range []string{"00000000000000000001.json", "00000000000000000000.json", "99999999999999999999.json",
		"09223372036854775807.json", "0000000000000000001.json", "+0000000000000000001.json", "00000000000000000001.JSON",
		"00000000000000000001.json.tmp", "", ".json"} {
		f.Add(s)
	}
	b := NewObjectBackend(nil, "")
	f.Fuzz(func(t *testing.T, name string) {
		v, ok := parseVersionName(name)
		if !ok {
			return
		}
		if v <= 0 {
			t.Fatalf("%q read as version %d", name, v)
		}
		if got := strings.TrimPrefix(b.Key(v), "versions/"); got != name {
			t.Fatalf("%q read as version %d, whose name is %q", name, v, got)
		}
	})
}

// laggingListing is a real backend whose listing leaves out its newest
// versions, as an object store whose listings lag behind its writes does;
// it gives up after maxCreates creates, so an apply that never catches up
// fails instead of spinning.
type laggingListing struct {
	Backend
	hide, creates, maxCreates int
}

func (l *laggingListing) Versions(ctx context.Context) ([]int64, error) {
	vs, err := l.Backend.Versions(ctx)
	return vs[:max(0, len(vs)-l.hide)], err
}

func (l *laggingListing) Create(ctx context.Context, v int64, data []byte) error {
	if l.creates++; l.creates > l.maxCreates {
		return fmt.Errorf("create %d: given up after %d creates", v, l.maxCreates)
	}
	return l.Backend.Create(ctx, v, data)
}

// TestApplyOnALaggingListing: when the listing does not show the version
// another apply took, Apply reads that version by its number and plans on
// top of it, instead of trying the same number again.
func TestApplyOnALaggingListing(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	real := NewObjectBackend(b, "registry")
	for i := range 3 {
		_, err := NewStore(real).Apply(ctx, testDefs(t, fmt.Sprintf("%dh", i+1)), ApplyOptions{})
		require.NoError(t, err)
	}
	lag := &laggingListing{Backend: real, hide: 2, maxCreates: 5}
	res, err := NewStore(lag).Apply(ctx, testDefs(t, "9h"), ApplyOptions{})
	require.NoError(t, err)
	require.True(t, res.Written)
	require.EqualValues(t, 4, res.Snapshot.Version)
	require.EqualValues(t, 3, res.Plan.FromVersion, "planned on top of the newest version")
	require.Equal(t, 3, lag.creates, "one refused create per version the listing hid")

	// Definitions equal to the hidden newest version write nothing.
	lag = &laggingListing{Backend: real, hide: 1, maxCreates: 5}
	res, err = NewStore(lag).Apply(ctx, testDefs(t, "9h"), ApplyOptions{})
	require.NoError(t, err)
	require.False(t, res.Written)
	require.EqualValues(t, 4, res.Snapshot.Version)
}

// TestWatcherOverS3: a watcher over an S3 registry swaps in a version
// applied by another store.
func TestWatcherOverS3(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	sc := storage.Config{S3: srv.Options()}
	writer, err := OpenStore(ctx, "s3://"+srv.Bucket+"/registry", sc)
	require.NoError(t, err)
	_, err = writer.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	reader, err := OpenStore(ctx, "s3://"+srv.Bucket+"/registry", sc)
	require.NoError(t, err)
	w, err := NewWatcher(ctx, reader, WatchOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 1, w.Current().Version)
	changed, err := w.Poll(ctx)
	require.NoError(t, err)
	require.False(t, changed)
	_, err = writer.Apply(ctx, testDefs(t, "2h"), ApplyOptions{})
	require.NoError(t, err)
	changed, err = w.Poll(ctx)
	require.NoError(t, err)
	require.True(t, changed)
	require.EqualValues(t, 2, w.Current().Version)
	require.Equal(t, Duration(2*time.Hour), w.Current().Defs.FeatureView("v").TTL)
}

// TestObjectBackendCreateAfterALostAnswer: the store stores a version but
// the connection drops before its answer; the client's retried PUT finds
// the key taken, and Create, finding its own bytes there, succeeds.
func TestObjectBackendCreateAfterALostAnswer(t *testing.T) {
	forEachS3(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		proxy := s3test.StartProxy(t, srv.Endpoint)
		opts := srv.Options()
		opts.Endpoint = proxy.Endpoint
		b, err := storage.NewS3(ctx, srv.Bucket, opts)
		require.NoError(t, err)
		ob := NewObjectBackend(b, "registry")
		srv.ResetRequests()
		proxy.Cut(1, 1) // the PUT is served, but its answer is lost after one byte
		require.NoError(t, ob.Create(ctx, 1, []byte("snapshot one")))
		require.Equal(t, 1, proxy.Cuts())
		var puts []int
		for _, r := range srv.Requests() {
			if r.Method == "PUT" {
				puts = append(puts, r.Status)
			}
		}
		require.Equal(t, []int{200, 412}, puts, "the store stored the first PUT and refused its retry")
		data, err := ob.Read(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, "snapshot one", string(data))
	})
}
