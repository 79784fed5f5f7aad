// Package objcache keeps local copies of objects from object storage in a
// bounded directory, so that a reader that needs files (DuckDB's
// read_parquet) can read objects of an S3 bucket.
//
// A copy is named by a hash of the object's address (bucket and key), its
// ETag and its size: an object replaced in the store has a new ETag, so
// its copy has a new name and is fetched again; the old copy is never
// read for it and is evicted in time. A copy is written durably (a synced
// temporary file renamed into place, internal/durable), so a name in the
// directory always holds a whole object; a crash leaves at most a
// temporary file, which Open removes.
//
// The directory holds at most MaxBytes of copies. Fetching a copy that
// would exceed it evicts the least recently used copies that no reader
// holds; when the copies held are too large to make room, Fetch fails and
// says so. Recency survives restarts: a use sets the copy's modification
// time, and Open orders what it finds by it.
//
// # Concurrency and ownership
//
// A Cache is safe for concurrent use; concurrent fetches of one object
// share one download. Every Entry that Fetch returns is held until its
// Release, and a held copy is never evicted. Caches (of one process or of
// several) over one directory share its copies: a held copy is open with
// a shared flock, and an eviction removes a copy only when it can lock it
// exclusively, so no cache evicts a copy another is reading (where flock
// exists: on Unix). Each still bounds the directory on its own account,
// counting what it fetched and found: give each long-running process a
// directory of its own for a bound that holds for the directory.
package objcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/quiverdata/quiver/internal/durable"
	"github.com/quiverdata/quiver/storage"
)

// DefaultMaxBytes bounds a cache whose Options give no size: 10 GiB.
const DefaultMaxBytes = 10 << 30

// suffix ends every copy's name.
const suffix = ".obj"

// Options configure a Cache.
type Options struct {
	// Dir is the cache directory, created when missing. Default:
	// DefaultDir().
	Dir string
	// MaxBytes bounds the bytes of the copies in Dir. Default
	// DefaultMaxBytes.
	MaxBytes int64
}

// DefaultDir is where a cache lives unless configured: quiver/objects in
// the user's cache directory ($XDG_CACHE_HOME, else ~/.cache on Linux),
// else in the OS temporary directory.
func DefaultDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "quiver", "objects")
	}
	return filepath.Join(os.TempDir(), "quiver", "objects")
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Dir == "" {
		o.Dir = DefaultDir()
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
}

// Validate reports every problem of o (after EnsureDefaults).
func (o *Options) Validate() error {
	if o.MaxBytes < 0 {
		return fmt.Errorf("object cache: max bytes %d is negative", o.MaxBytes)
	}
	return nil
}

// Cache is a bounded directory of object copies.
type Cache struct {
	dir string
	max int64

	mu      sync.Mutex
	entries map[string]*entry // by file name
	bytes   int64             // sizes of entries, in flight ones included
	stats   Stats
}

type entry struct {
	name  string
	size  int64
	used  time.Time
	pins  int           // fetches and Entries using it; never evicted while > 0
	lock  *os.File      // open with a shared lock while an Entry holds it
	ready chan struct{} // closed once the download ended
	err   error         // the download's failure, once ready
}

// Stats count what a Cache did since Open.
type Stats struct {
	// Hits are fetches answered by a copy already there; Misses the
	// fetches that downloaded the object.
	Hits, Misses int64
	// Fetched is the bytes downloaded; Evicted the copies removed to
	// make room.
	Fetched, Evicted int64
	// Bytes is the size of the copies now in the directory.
	Bytes int64
}

// Open opens (creating it when missing) the cache directory of opts and
// takes stock of the copies in it, removing temporary files a crash left
// and evicting the oldest copies beyond the bound.
func Open(opts Options) (*Cache, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("object cache: %w", err)
	}
	c := &Cache{dir: opts.Dir, max: opts.MaxBytes, entries: map[string]*entry{}}
	des, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("object cache: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasSuffix(name, durable.TempSuffix):
			_ = os.Remove(filepath.Join(c.dir, name)) // a crash's leftover; nothing reads it
		case strings.HasSuffix(name, suffix) && de.Type().IsRegular():
			info, err := de.Info()
			if err != nil {
				continue // gone since the listing
			}
			c.add(name, info.Size(), info.ModTime())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictLocked(0)
	return c, nil
}

// Dir is the cache directory.
func (c *Cache) Dir() string { return c.dir }

// MaxBytes is the bound on the copies' bytes.
func (c *Cache) MaxBytes() int64 { return c.max }

// Stats returns what the cache did so far.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Bytes = c.bytes
	return s
}

func (c *Cache) add(name string, size int64, used time.Time) *entry {
	ready := make(chan struct{})
	close(ready)
	e := &entry{name: name, size: size, used: used, ready: ready}
	c.mu.Lock()
	c.entries[name] = e
	c.bytes += size
	c.mu.Unlock()
	return e
}

// Entry is a held copy of an object.
type Entry struct {
	// Path is the copy's absolute file name.
	Path string
	c    *Cache
	e    *entry
	once sync.Once
}

// Release lets the copy be evicted again. It may be called more than
// once.
func (en *Entry) Release() {
	en.once.Do(func() { en.c.unpin(en.e) })
}

// Name returns the file name of the copy of the object info describes in
// bucket b: a hash of its address, ETag and size.
func Name(b storage.Bucket, info storage.ObjectInfo) string {
	h := sha256.Sum256([]byte(b.URI(info.Key) + "\x00" + info.ETag + "\x00" + fmt.Sprint(info.Size)))
	return hex.EncodeToString(h[:16]) + suffix
}

// ErrChanged is the failure of a fetch whose object was replaced since it
// was listed: the caller lists it again.
var ErrChanged = errors.New("quiver: object replaced since it was listed")

// ErrFull is the failure of a fetch of an object the cache cannot hold:
// larger than its bound, or with no room left beside the copies that
// running requests hold.
var ErrFull = errors.New("quiver: object cache full")

// Fetch returns a held copy of the object info describes (as a listing or
// Stat of b gave it), downloading it when the cache has no copy of that
// version. An object whose ETag or size is no longer info's fails with an
// error wrapping ErrChanged; an object larger than the cache, or one there
// is no room for because the copies held fill it, fails too. The caller
// releases the Entry.
func (c *Cache) Fetch(ctx context.Context, b storage.Bucket, info storage.ObjectInfo) (*Entry, error) {
	return c.FetchFunc(ctx, Name(b, info), info.Size, b.URI(info.Key), func(ctx context.Context, f *os.File) error {
		return c.download(ctx, b, info, f)
	})
}

// Has reports whether the cache holds a whole copy of the object info
// describes (without holding it: a later Fetch may still download it).
func (c *Cache) Has(b storage.Bucket, info storage.ObjectInfo) bool {
	name := Name(b, info)
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok {
		select {
		case <-e.ready:
			return e.err == nil
		default:
			return true // being fetched
		}
	}
	st, err := os.Stat(filepath.Join(c.dir, name))
	return err == nil && st.Size() == info.Size
}

// DerivedName returns the file name of a copy derived from the object
// info describes (a slice of some of its columns), told apart from other
// derivations of it by what.
func DerivedName(b storage.Bucket, info storage.ObjectInfo, what string) string {
	h := sha256.Sum256([]byte(b.URI(info.Key) + "\x00" + info.ETag + "\x00" + fmt.Sprint(info.Size) + "\x00" + what))
	return hex.EncodeToString(h[:16]) + suffix
}

// FetchFunc returns a held copy named name (Name or DerivedName), of size
// bytes, writing it with write when the cache has none: write fills f,
// which is then synced and renamed into place, so a name in the directory
// always holds a whole copy. what names the copy's source for errors. The
// size bound and sharing are Fetch's.
func (c *Cache) FetchFunc(ctx context.Context, name string, size int64, what string, write func(ctx context.Context, f *os.File) error) (*Entry, error) {
	path := filepath.Join(c.dir, name)
	if size > c.max {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the object cache holds (%d bytes, in %s): raise its max_bytes",
			ErrFull, what, size, c.max, c.dir)
	}
	for {
		c.mu.Lock()
		e, ok := c.entries[name]
		if ok {
			e.pins++
			c.mu.Unlock()
			select {
			case <-e.ready:
			case <-ctx.Done():
				c.unpin(e)
				return nil, ctx.Err()
			}
			if e.err != nil {
				c.unpin(e)
				// The download that held it failed; a later fetch tries
				// again, this one reports it.
				return nil, e.err
			}
			c.mu.Lock()
			if !c.holdLocked(e, path) {
				// Removed behind the cache's back (another cache over the
				// directory evicted it): forget it and fetch again.
				c.unpinLocked(e)
				if c.entries[name] == e && e.pins == 0 {
					delete(c.entries, name)
					c.bytes -= e.size
				}
				c.mu.Unlock()
				continue
			}
			c.stats.Hits++
			c.mu.Unlock()
			c.touch(e, path)
			return &Entry{Path: path, c: c, e: e}, nil
		}
		// Another process may have fetched it into the shared directory.
		if st, err := os.Stat(path); err == nil && st.Size() == size {
			e = &entry{name: name, size: size, ready: closed, pins: 1}
			if c.holdLocked(e, path) {
				c.entries[name] = e
				c.bytes += size
				c.stats.Hits++
				c.evictLocked(0)
				c.mu.Unlock()
				c.touch(e, path)
				return &Entry{Path: path, c: c, e: e}, nil
			}
		}
		if !c.evictLocked(size) {
			held := c.bytes
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: %s (%d bytes) does not fit in the object cache: %d of its %d bytes (in %s) hold copies that running requests read; raise its max_bytes", ErrFull,
				what, size, held, c.max, c.dir)
		}
		e = &entry{name: name, size: size, used: time.Now(), pins: 1, ready: make(chan struct{})}
		c.entries[name] = e
		c.bytes += size
		c.stats.Misses++
		c.mu.Unlock()

		err := durable.WriteFile(path, 0o644, func(f *os.File) error { return write(ctx, f) })
		if err == nil {
			if st, serr := os.Stat(path); serr != nil || st.Size() != size {
				err = fmt.Errorf("the copy is not the %d bytes it should be", size)
			}
		}
		if err != nil {
			err = fmt.Errorf("cache %s in %s: %w", what, c.dir, err)
		}
		c.mu.Lock()
		if err == nil {
			c.stats.Fetched += size
			if !c.holdLocked(e, path) {
				err = fmt.Errorf("cache %s in %s: the copy was removed as soon as it was written", what, c.dir)
			}
		}
		if err != nil {
			e.err = err
			c.unpinLocked(e)
			delete(c.entries, name)
			c.bytes -= e.size
		}
		close(e.ready)
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return &Entry{Path: path, c: c, e: e}, nil
	}
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *Cache) unpin(e *entry) {
	c.mu.Lock()
	c.unpinLocked(e)
	c.mu.Unlock()
}

// unpinLocked drops one use of e, and its shared lock with the last.
func (c *Cache) unpinLocked(e *entry) {
	e.pins--
	if e.pins == 0 && e.lock != nil {
		_ = e.lock.Close() // a read-only descriptor; closing releases the lock
		e.lock = nil
	}
}

// holdLocked takes e's shared lock for an Entry about to be returned, if
// it has none yet, and reports whether path still is e's copy (not
// removed by another cache before the lock was taken).
func (c *Cache) holdLocked(e *entry, path string) bool {
	if e.lock != nil {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	if err := lockShared(f); err != nil {
		_ = f.Close() // being evicted by another cache right now
		return false
	}
	held, err1 := f.Stat()
	now, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		_ = f.Close() // replaced or removed before the lock was taken
		return false
	}
	e.lock = f
	return true
}

// touch records a use, in memory and as the file's modification time
// (recency across restarts; a failure only loses that).
func (c *Cache) touch(e *entry, path string) {
	now := time.Now()
	c.mu.Lock()
	e.used = now
	c.mu.Unlock()
	_ = os.Chtimes(path, now, now)
}

// evictLocked removes unheld copies, least recently used first, until
// need more bytes fit under the bound; it reports whether they do.
func (c *Cache) evictLocked(need int64) bool {
	if c.bytes+need <= c.max {
		return true
	}
	var free []*entry
	for _, e := range c.entries {
		if e.pins == 0 {
			free = append(free, e)
		}
	}
	sort.Slice(free, func(i, j int) bool { return free[i].used.Before(free[j].used) })
	for _, e := range free {
		if c.bytes+need <= c.max {
			break
		}
		switch err := c.remove(e.name); {
		case errors.Is(err, errInUse):
			continue // read by another cache: still there, still counted
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			continue
		}
		delete(c.entries, e.name)
		c.bytes -= e.size
		c.stats.Evicted++
	}
	return c.bytes+need <= c.max
}

// errInUse: another cache holds the copy.
var errInUse = errors.New("copy in use")

// remove deletes a copy unless another cache over the directory holds it
// (its shared lock makes the exclusive one fail).
func (c *Cache) remove(name string) error {
	path := filepath.Join(c.dir, name)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close() // read-only; closing releases the lock
	if err := lockExclusive(f); err != nil {
		return errInUse
	}
	return os.Remove(path)
}

// copyChunk is how much one ReadAt of a download asks for: the store
// splits it into ranged GETs of its part size, run in parallel.
const copyChunk = 64 << 20

// download copies the object into f, checking that it is the version
// info describes.
func (c *Cache) download(ctx context.Context, b storage.Bucket, info storage.ObjectInfo, f *os.File) error {
	obj, err := b.Open(ctx, info.Key)
	if err != nil {
		return err
	}
	defer obj.Close()
	if err := Check(b, info, obj.Info()); err != nil {
		return err
	}
	return Copy(f, obj, nil)
}

// Copy writes the whole of obj to f. tail, when given, is what the caller
// has read of obj's end already: only the bytes before it are read.
func Copy(f *os.File, obj storage.Object, tail []byte) error {
	size := obj.Info().Size
	end := size - int64(len(tail))
	if end < 0 {
		return fmt.Errorf("a %d-byte tail of a %d-byte object", len(tail), size)
	}
	buf := make([]byte, min(int64(copyChunk), max(end, 1)))
	for off := int64(0); off < end; {
		n := min(int64(len(buf)), end-off)
		if got, err := obj.ReadAt(buf[:n], off); int64(got) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		off += n
	}
	_, err := f.Write(tail)
	return err
}

// Check fails with ErrChanged when got (what opening the object found)
// is not the version want (what its listing gave).
func Check(b storage.Bucket, want, got storage.ObjectInfo) error {
	if got.ETag != want.ETag || got.Size != want.Size {
		return fmt.Errorf("%s: %w (ETag %s, %d bytes, now ETag %s, %d bytes)", b.URI(want.Key), ErrChanged, want.ETag, want.Size, got.ETag, got.Size)
	}
	return nil
}
