package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/storage"
)

// testDefs returns valid definitions whose content depends on ttl.
func testDefs(t testing.TB, ttl string) *Definitions {
	t.Helper()
	files := map[string][]byte{"f.yaml": []byte(fmt.Sprintf(`
entities:
  - name: driver
    join_keys: [{name: driver_id, type: int64}]
sources:
  - {name: s, kind: parquet, path: s/*.parquet, timestamp_field: ts}
feature_views:
  - name: v
    entities: [driver]
    source: s
    ttl: %s
    features: [{name: x, type: float32}]
`, ttl))}
	defs, errs := ParseDefinitions("test", []string{"f.yaml"}, files)
	require.NoError(t, errs.Err())
	return defs
}

func TestApplyWritesVersionsAndReadsThemBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := OpenStore(ctx, dir, storage.Config{})
	require.NoError(t, err)

	_, err = store.Latest(ctx)
	require.ErrorIs(t, err, ErrNoSnapshot)

	clock := func() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }
	r1, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{Commit: "abc", Author: "ci", Now: clock})
	require.NoError(t, err)
	require.True(t, r1.Written)
	require.EqualValues(t, 1, r1.Snapshot.Version)

	// Unchanged definitions write nothing.
	r, err := store.Apply(ctx, testDefs(t, "60m"), ApplyOptions{Now: clock})
	require.NoError(t, err)
	require.False(t, r.Written)
	require.EqualValues(t, 1, r.Snapshot.Version)

	r2, err := store.Apply(ctx, testDefs(t, "2h"), ApplyOptions{Now: clock})
	require.NoError(t, err)
	require.EqualValues(t, 2, r2.Snapshot.Version)
	require.NotEqual(t, r1.Snapshot.Hash, r2.Snapshot.Hash)

	// Earlier versions stay readable, with their own content.
	got1, err := store.Get(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, Duration(time.Hour), got1.Defs.FeatureView("v").TTL)
	require.Equal(t, "abc", got1.Commit)
	require.Equal(t, "ci", got1.Author)
	require.Equal(t, clock(), got1.CreatedAt)
	latest, err := store.Latest(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, latest.Version)
	require.Equal(t, Duration(2*time.Hour), latest.Defs.FeatureView("v").TTL)

	hist, err := store.History(ctx)
	require.NoError(t, err)
	require.Len(t, hist, 2)
	require.EqualValues(t, []int64{1, 2}, []int64{hist[0].Version, hist[1].Version})

	_, err = store.Get(ctx, 7)
	require.ErrorIs(t, err, ErrVersionNotFound)
}

func TestSnapshotRoundTripKeepsHash(t *testing.T) {
	ctx := context.Background()
	store := NewStore(NewDirBackend(t.TempDir()))
	defs := testDefs(t, "48h")
	res, err := store.Apply(ctx, defs, ApplyOptions{})
	require.NoError(t, err)
	got, err := store.Get(ctx, res.Snapshot.Version)
	require.NoError(t, err)
	h, err := got.Defs.Hash()
	require.NoError(t, err)
	want, err := defs.Hash()
	require.NoError(t, err)
	require.Equal(t, want, h)
	// Lookups work on decoded definitions.
	require.NotNil(t, got.Defs.Entity("driver"))
	feats, err := got.Defs.Resolve([]string{"v:*"})
	require.NoError(t, err)
	require.Equal(t, []ResolvedFeature{{View: "v", Feature: "x", Type: ValueType{Elem: Float32}}}, feats)
}

func TestCorruptSnapshotIsReported(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := NewStore(NewDirBackend(dir))
	_, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	path := filepath.Join(dir, "versions", fmt.Sprintf("%020d.json", 1))
	data, err := os.ReadFile(path)
	require.NoError(t, err)

	tampered := []byte(string(data[:len(data)/2]))
	require.NoError(t, os.WriteFile(path, tampered, 0o644))
	_, err = store.Latest(ctx)
	require.ErrorContains(t, err, "registry version 1 is unreadable")

	require.Contains(t, string(data), `"ttl": "1h"`)
	edited := []byte(strings.Replace(string(data), `"ttl": "1h"`, `"ttl": "2h"`, 1))
	require.NoError(t, os.WriteFile(path, edited, 0o644))
	_, err = store.Latest(ctx)
	require.ErrorContains(t, err, "registry version 1 is corrupt: content hash")
}

// TestConcurrentApplies runs many applies of different content at once,
// each through its own Store (as separate processes would), and checks
// that every one got its own version and none was lost or torn.
func TestConcurrentApplies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 16
	var wg sync.WaitGroup
	results := make([]*ApplyResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := NewStore(NewDirBackend(dir))
			<-start
			results[i], errs[i] = store.Apply(ctx, testDefs(t, fmt.Sprintf("%dh", i+1)), ApplyOptions{AllowBreaking: true})
		}()
	}
	close(start)
	wg.Wait()

	seen := map[int64]int{}
	for i := range n {
		require.NoError(t, errs[i])
		require.True(t, results[i].Written)
		seen[results[i].Snapshot.Version] = i
	}
	require.Len(t, seen, n, "every apply got a distinct version")
	store := NewStore(NewDirBackend(dir))
	hist, err := store.History(ctx)
	require.NoError(t, err)
	require.Len(t, hist, n)
	for i, h := range hist {
		require.EqualValues(t, i+1, h.Version, "versions are contiguous")
		snap, err := store.Get(ctx, h.Version)
		require.NoError(t, err)
		want := Duration(time.Duration(seen[h.Version]+1) * time.Hour)
		require.Equal(t, want, snap.Defs.FeatureView("v").TTL, "version %d holds what its apply wrote", h.Version)
	}
	tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
	require.NoError(t, err)
	require.Empty(t, tmp, "no temporary files are left behind")
}

// TestConcurrentIdenticalApplies: applying the same content concurrently
// writes exactly one version.
func TestConcurrentIdenticalApplies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := NewStore(NewDirBackend(dir)).Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
			require.NoError(t, err)
			if res.Written {
				mu.Lock()
				written++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, written)
	v, err := NewStore(NewDirBackend(dir)).LatestVersion(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, v)
}

func TestBreakingApplyIsRefused(t *testing.T) {
	ctx := context.Background()
	store := NewStore(NewDirBackend(t.TempDir()))
	_, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	changed := testDefs(t, "1h")
	changed.FeatureViews[0].Features[0].Type = ValueType{Elem: Float64}
	res, err := store.Apply(ctx, changed, ApplyOptions{})
	require.ErrorIs(t, err, ErrBreaking)
	require.True(t, res.Plan.Breaking())
	v, err := store.LatestVersion(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, v, "a refused apply writes nothing")

	res, err = store.Apply(ctx, changed, ApplyOptions{AllowBreaking: true})
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Snapshot.Version)
}

func TestDirBackendCreateIsExclusive(t *testing.T) {
	ctx := context.Background()
	b := NewDirBackend(t.TempDir())
	require.NoError(t, b.Create(ctx, 1, []byte("one")))
	err := b.Create(ctx, 1, []byte("two"))
	require.ErrorIs(t, err, ErrVersionExists)
	data, err := b.Read(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "one", string(data))
}

func TestOpenStoreLocations(t *testing.T) {
	ctx := context.Background()
	_, err := OpenStore(ctx, "gs://bucket/registry", storage.Config{})
	require.ErrorContains(t, err, "gs:// registries are not supported; use a directory or s3://bucket/prefix")
	_, err = OpenStore(ctx, "s3://Not_A_Bucket/registry", storage.Config{})
	require.ErrorIs(t, err, storage.ErrInvalid)
	s, err := OpenStore(ctx, "file://"+t.TempDir(), storage.Config{})
	require.NoError(t, err)
	v, err := s.LatestVersion(ctx)
	require.NoError(t, err)
	require.Zero(t, v)
	_, err = OpenStore(ctx, "", storage.Config{})
	require.Error(t, err)
}

func TestWatcherSwapsInNewVersions(t *testing.T) {
	ctx := context.Background()
	store := NewStore(NewDirBackend(t.TempDir()))
	_, err := NewWatcher(ctx, store, WatchOptions{})
	require.ErrorIs(t, err, ErrNoSnapshot)

	_, err = store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	var changes []int64
	w, err := NewWatcher(ctx, store, WatchOptions{OnChange: func(old, new *Snapshot) {
		changes = append(changes, old.Version, new.Version)
	}})
	require.NoError(t, err)
	require.EqualValues(t, 1, w.Current().Version)

	changed, err := w.Poll(ctx)
	require.NoError(t, err)
	require.False(t, changed)

	_, err = store.Apply(ctx, testDefs(t, "2h"), ApplyOptions{})
	require.NoError(t, err)
	_, err = store.Apply(ctx, testDefs(t, "3h"), ApplyOptions{})
	require.NoError(t, err)
	changed, err = w.Poll(ctx)
	require.NoError(t, err)
	require.True(t, changed)
	require.EqualValues(t, 3, w.Current().Version, "the watcher jumps to the newest version")
	require.Equal(t, []int64{1, 3}, changes)
}

func TestWatcherKeepsCurrentOnUnreadableVersion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := NewStore(NewDirBackend(dir))
	_, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	w, err := NewWatcher(ctx, store, WatchOptions{})
	require.NoError(t, err)
	require.NoError(t, NewDirBackend(dir).Create(ctx, 2, []byte("{not json")))
	_, err = w.Poll(ctx)
	require.ErrorContains(t, err, "load registry version 2")
	require.EqualValues(t, 1, w.Current().Version)
}

func TestWatcherRunReloadsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	store := NewStore(NewDirBackend(t.TempDir()))
	_, err := store.Apply(ctx, testDefs(t, "1h"), ApplyOptions{})
	require.NoError(t, err)
	swapped := make(chan int64, 4)
	w, err := NewWatcher(ctx, store, WatchOptions{Interval: 5 * time.Millisecond,
		OnChange: func(_, new *Snapshot) { swapped <- new.Version }})
	require.NoError(t, err)
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	// Readers see a whole snapshot at every moment while versions change.
	stopReaders := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stopReaders:
					return
				default:
				}
				s := w.Current()
				if s.Defs.FeatureView("v") == nil {
					panic("reader saw a snapshot without its view")
				}
			}
		}()
	}
	_, err = store.Apply(ctx, testDefs(t, "2h"), ApplyOptions{})
	require.NoError(t, err)
	select {
	case v := <-swapped:
		require.EqualValues(t, 2, v)
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not pick up version 2")
	}
	require.EqualValues(t, 2, w.Current().Version)
	close(stopReaders)
	readers.Wait()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop when its context ended")
	}
}
