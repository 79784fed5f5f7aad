package online

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// Embedded is the on-disk embedded store (Pebble) for local work,
// single-binary demos and edge deployments. Keys are
//
//	r \x00 project \x00 view \x00 entity   (rows)
//	m \x00 project \x00 name               (meta)
//
// so that a view's rows are one key range. The event-time guard runs
// under a lock striped by key, and each Write is one synced batch.
type Embedded struct {
	db    *pebble.DB
	locks [64]sync.Mutex
}

var _ Store = (*Embedded)(nil)

// embeddedCacheBytes is the block cache of the embedded store: reads of a
// working set that fits never touch the disk.
const embeddedCacheBytes = 256 << 20

// ErrLocked is returned by OpenEmbedded when another process (or another
// open in this one) holds the store: the embedded store serves one process.
var ErrLocked = errors.New("quiver: embedded online store is in use")

// OpenEmbedded opens (creating if needed) the store in dir. A store that
// another process holds is ErrLocked, with what to do about it.
func OpenEmbedded(dir string) (*Embedded, error) {
	cache := pebble.NewCache(embeddedCacheBytes)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, Cache: cache})
	if isLockHeld(err) {
		return nil, &lockedError{dir: dir, pid: lockHolder(dir), cause: err}
	}
	if err != nil {
		return nil, fmt.Errorf("open embedded online store %s: %w", dir, err)
	}
	return &Embedded{db: db}, nil
}

// lockedError is ErrLocked for one directory, saying what to do.
type lockedError struct {
	dir   string
	pid   int // the holder's process id, 0 when unknown
	cause error
}

func (e *lockedError) Error() string {
	who := "another Quiver process"
	switch {
	case strings.Contains(e.cause.Error(), heldHere):
		who = "this process, which opened it already,"
	case e.pid > 0 && e.pid != os.Getpid():
		who = fmt.Sprintf("another Quiver process (pid %d)", e.pid)
	}
	return fmt.Sprintf("open embedded online store %s: %s holds it (%v); "+
		"stop that process (quiver serve, dev, stream or materialize), or share one online store between "+
		"processes: look features up through quiver serve's gRPC or HTTP endpoints, or set online.type: redis",
		e.dir, who, e.cause)
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }
func (e *lockedError) Unwrap() error        { return e.cause }

// isLockHeld reports whether err is Pebble failing to take its directory
// lock because someone holds it: fcntl's EAGAIN or EACCES on the LOCK file
// (another process), or Pebble's own refusal within this process. A
// permission error creating the file is a *fs.PathError, not this.
func isLockHeld(err error) bool {
	if err == nil {
		return false
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), heldHere)
}

// heldHere is Pebble's refusal to lock a directory this process holds.
const heldHere = "lock held by current process"

func rowKey(k Key) []byte {
	b := make([]byte, 0, 4+len(k.Project)+len(k.View)+len(k.Entity))
	b = append(b, 'r', 0)
	b = append(b, k.Project...)
	b = append(b, 0)
	b = append(b, k.View...)
	b = append(b, 0)
	return append(b, k.Entity...)
}

func viewPrefix(project, view string) []byte {
	return append([]byte("r\x00"+project+"\x00"+view), 0)
}

func metaKey(project, name string) []byte { return []byte("m\x00" + project + "\x00" + name) }

func (s *Embedded) lockFor(key []byte) *sync.Mutex {
	var h uint32 = 2166136261
	for _, c := range key {
		h = (h ^ uint32(c)) * 16777619
	}
	return &s.locks[h%uint32(len(s.locks))]
}

// Write implements Store.
func (s *Embedded) Write(ctx context.Context, rows []Row, opts WriteOptions) (WriteResult, error) {
	var res WriteResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	keys := make([][]byte, len(rows))
	for i, r := range rows {
		if _, err := eventMicros(r.Value); err != nil {
			return res, fmt.Errorf("write %s: %w", r.Key.View, err)
		}
		keys[i] = rowKey(r.Key)
	}
	// Lock every stripe the batch touches, in stripe order, so that
	// concurrent writers of the same key serialize their check and write.
	locked := map[*sync.Mutex]bool{}
	for _, k := range keys {
		locked[s.lockFor(k)] = true
	}
	for i := range s.locks {
		if locked[&s.locks[i]] {
			s.locks[i].Lock()
			defer s.locks[i].Unlock()
		}
	}
	if opts.Expect != nil && len(opts.Expect) != len(rows) {
		return res, fmt.Errorf("write: %d expected values for %d rows", len(opts.Expect), len(rows))
	}
	batch := s.db.NewIndexedBatch()
	defer batch.Close()
	for i, r := range rows {
		if opts.Expect != nil {
			same, err := holds(batch, keys[i], opts.Expect[i])
			if err != nil {
				return WriteResult{}, fmt.Errorf("read %s: %w", r.Key.View, err)
			}
			if !same {
				res.Skipped++
				res.Conflicts = append(res.Conflicts, i)
				continue
			}
		} else if !opts.Force {
			cur, closer, err := batch.Get(keys[i])
			switch {
			case errors.Is(err, pebble.ErrNotFound):
			case err != nil:
				return WriteResult{}, fmt.Errorf("read %s: %w", r.Key.View, err)
			default:
				older := len(cur) >= eventTimeTo && bytes.Compare(r.Value[eventTimeFrom:eventTimeTo], cur[eventTimeFrom:eventTimeTo]) < 0
				if err := closer.Close(); err != nil {
					return WriteResult{}, err
				}
				if older {
					res.Skipped++
					continue
				}
			}
		}
		if err := batch.Set(keys[i], r.Value, nil); err != nil {
			return WriteResult{}, err
		}
		res.Written++
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return WriteResult{}, fmt.Errorf("commit online write: %w", err)
	}
	return res, nil
}

// holds reports whether key holds want (nil: no value).
func holds(batch *pebble.Batch, key, want []byte) (bool, error) {
	cur, closer, err := batch.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return want == nil, nil
	}
	if err != nil {
		return false, err
	}
	same := want != nil && bytes.Equal(cur, want)
	return same, closer.Close()
}

// Read implements Store.
func (s *Embedded) Read(ctx context.Context, keys []Key) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, closer, err := s.db.Get(rowKey(k))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k.View, err)
		}
		out[i] = append([]byte(nil), v...)
		if err := closer.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteView implements Store.
func (s *Embedded) DeleteView(ctx context.Context, project, view string) (int64, error) {
	lo := viewPrefix(project, view)
	hi := append(append([]byte(nil), lo[:len(lo)-1]...), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	var n int64
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	if err := s.db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return 0, fmt.Errorf("delete view %s: %w", view, err)
	}
	return n, nil
}

// GetMeta implements Store.
func (s *Embedded) GetMeta(ctx context.Context, project, name string) ([]byte, error) {
	v, closer, err := s.db.Get(metaKey(project, name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

// SetMeta implements Store.
func (s *Embedded) SetMeta(ctx context.Context, project, name string, value []byte) error {
	return s.db.Set(metaKey(project, name), value, pebble.Sync)
}

// Close implements Store.
func (s *Embedded) Close() error { return s.db.Close() }

// quietLogger keeps Pebble's routine messages (WAL replays, compactions)
// off the terminal and sends its errors to slog.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	slog.Error("embedded online store", "error", fmt.Sprintf(format, args...))
}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("embedded online store: "+format, args...))
}
