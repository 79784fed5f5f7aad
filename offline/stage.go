package offline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/quiverdata/quiver/internal/objcache"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

// Parquet on object storage is staged: the objects a request reads are
// listed (a glob) or looked up (one key), copied into the engine's object
// cache unless a copy of their current version is there already, and
// DuckDB's read_parquet reads the copies, in key order, which is the
// lexical path order of rule 2. DuckDB itself never reaches the store (its
// httpfs extension is neither bundled nor ever downloaded). The copies a
// request reads are held until the request ends, so the cache cannot evict
// them under it. docs/storage.md says why staging was chosen over reading
// the objects' columns from Go.

// isRemote reports whether p is an object-storage URI.
func isRemote(p string) bool { return strings.HasPrefix(strings.ToLower(p), storage.SchemeS3+"://") }

// remotePath returns the object-storage URI a source path names: the path
// itself when it is a URI, else the path below an s3:// data root.
func (e *Engine) remotePath(p string) (string, bool) {
	switch {
	case isRemote(p):
		return p, true
	case e.remoteRoot:
		return e.dataRoot + "/" + strings.TrimPrefix(p, "/"), true
	}
	return "", false
}

// staged holds the cached copies one request reads.
type staged struct {
	mu      sync.Mutex
	entries []*objcache.Entry
}

// release lets the cache evict the copies again.
func (s *staged) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, en := range s.entries {
		en.Release()
	}
	s.entries = nil
}

func (s *staged) hold(en *objcache.Entry) {
	s.mu.Lock()
	s.entries = append(s.entries, en)
	s.mu.Unlock()
}

// objectCache opens the engine's object cache on first use, so that an
// engine that reads only local files never creates one.
func (e *Engine) objectCache() (*objcache.Cache, error) {
	e.cacheOnce.Do(func() {
		e.cache, e.cacheErr = objcache.Open(objcache.Options{Dir: e.opts.Cache.Dir, MaxBytes: e.opts.Cache.MaxBytes})
		e.cacheOpened.Store(true)
	})
	return e.cache, e.cacheErr
}

// CacheStats count what an engine's object cache did since the engine
// opened it.
type CacheStats struct {
	// Hits are objects a request found a current copy of; Misses those
	// it downloaded.
	Hits, Misses int64
	// Fetched is the bytes downloaded; Evicted the copies removed to
	// make room.
	Fetched, Evicted int64
	// Bytes is the size of the copies in the cache now.
	Bytes int64
	// Slices are the misses that copied some columns or row groups of
	// an object rather than all of it (slice.go).
	Slices int64
}

// CacheStats reports what the object cache did so far (zero while no
// s3:// path was read: the cache is opened on first use).
func (e *Engine) CacheStats() CacheStats {
	if !e.cacheOpened.Load() {
		return CacheStats{}
	}
	c, err := e.objectCache()
	if err != nil {
		return CacheStats{}
	}
	s := c.Stats()
	return CacheStats{Hits: s.Hits, Misses: s.Misses, Fetched: s.Fetched, Evicted: s.Evicted, Bytes: s.Bytes, Slices: e.slices.Load()}
}

// stageAttempts bounds how often a request lists objects again when one
// was replaced between its listing and its download.
const stageAttempts = 3

// fetchConcurrency is how many objects one request downloads at once
// (each download runs the store's own parallel ranged GETs).
const fetchConcurrency = 4

// stage copies the objects uri names (one key, or a glob over keys) into
// the cache and returns the copies' paths in key order, held by st.
// stageError tells the caller's problems (a URI that names no object)
// from the store's.
func (e *Engine) stage(ctx context.Context, uri string, st *staged, proj *projection) ([]string, error) {
	var paths []string
	var err error
	for range stageAttempts {
		paths, err = e.stageOnce(ctx, uri, st, proj)
		if !errors.Is(err, objcache.ErrChanged) {
			break
		}
		// Replaced since the listing: list again, for the new version.
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return paths, nil
}

// errNoMatch: a glob matched no object.
var errNoMatch = errors.New("no object matches")

// stageError is the error of staging what (a source or an entity table):
// an invalid request when its URI names nothing (a missing key or bucket,
// a glob without matches, a malformed URI), a failure otherwise.
func stageError(what string, err error) error {
	for _, missing := range []error{storage.ErrNotFound, storage.ErrBucketNotFound, storage.ErrInvalid, errNoMatch} {
		if errors.Is(err, missing) {
			return fmt.Errorf("%w: %s: %w", ErrInvalidRequest, what, err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (e *Engine) stageOnce(ctx context.Context, uri string, st *staged, proj *projection) ([]string, error) {
	b, key, err := e.store.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	var objs []storage.ObjectInfo
	if storage.IsGlob(key) {
		if objs, err = storage.Glob(ctx, b, key); err != nil {
			return nil, err
		}
		if len(objs) == 0 {
			return nil, fmt.Errorf("%w %s", errNoMatch, uri)
		}
	} else {
		info, err := b.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		objs = []storage.ObjectInfo{info}
	}
	return e.fetchAll(ctx, b, objs, st, proj)
}

// logFiles returns the local files of a stream view's committed offline
// log, in the log's source order: its own files below a local data root,
// the staged copies of its objects below an s3:// one.
func (e *Engine) logFiles(ctx context.Context, view string, st *staged, proj *projection) ([]string, error) {
	if !e.remoteRoot {
		return streamlog.Files(e.dataRoot, view)
	}
	// A log's objects are never replaced (each batch's names are its
	// own), so a changed object is not listed again.
	b, objs, err := streamlog.Objects(ctx, e.store, e.dataRoot, view)
	if err != nil || len(objs) == 0 {
		return nil, err
	}
	return e.fetchAll(ctx, b, objs, st, proj)
}

// fetchAll copies objs of b into the cache, at most fetchConcurrency at
// once, and returns the copies' paths in the order of objs, held by st:
// whole copies, or slices of proj's columns and row groups.
func (e *Engine) fetchAll(ctx context.Context, b storage.Bucket, objs []storage.ObjectInfo, st *staged, proj *projection) ([]string, error) {
	cache, err := e.objectCache()
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(objs))
	errs := make([]error, len(objs))
	sem := make(chan struct{}, fetchConcurrency)
	var wg sync.WaitGroup
	for i, o := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			en, err := e.fetchOne(ctx, cache, b, o, proj)
			if err != nil {
				errs[i] = err
				return
			}
			st.hold(en)
			paths[i] = en.Path
		}()
	}
	wg.Wait()
	// The first failure in key order, and how many more there were (a
	// store that refuses one object usually refuses them all).
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	switch {
	case failed > 1:
		return nil, fmt.Errorf("%w (and %d more of the %d objects failed)", first, failed-1, len(objs))
	case first != nil:
		return nil, first
	}
	return paths, nil
}

// parquetFiles renders a read_parquet list of local files.
func parquetFiles(paths []string) string {
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = quoteString(p)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
