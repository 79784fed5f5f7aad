package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/quiverdata/quiver/internal/objcache"
	"github.com/quiverdata/quiver/storage"
)

// saveObject is Save to an object-storage URI: the set is built into a
// file of a new temporary directory (saveTempDir) and uploaded from it;
// the directory is removed whatever happens.
func (e *Engine) saveObject(ctx context.Context, req *Request, uri, format string, opts SaveOptions) (res SaveResult, err error) {
	b, key, err := e.store.Open(ctx, uri)
	if err != nil {
		return SaveResult{}, fmt.Errorf("%w: save training set to %s: %w", ErrInvalidRequest, uri, err)
	}
	if !opts.Overwrite {
		if err := e.checkAbsent(ctx, b, key); err != nil {
			return SaveResult{}, err
		}
	}
	parent, err := e.saveTempDir()
	if err != nil {
		return SaveResult{}, fmt.Errorf("save training set to %s: %w", uri, err)
	}
	dir, err := os.MkdirTemp(parent, "quiver-save-")
	if err != nil {
		return SaveResult{}, fmt.Errorf("save training set to %s: %w", uri, err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove temporary directory: %w", rerr))
		}
	}()
	tmp := filepath.Join(dir, "set"+path.Ext(key))
	n, err := e.build(ctx, req, tmp, uri, format, false, opts.Progress)
	if err != nil {
		return SaveResult{}, err
	}
	info, err := e.upload(ctx, b, key, tmp, opts.Overwrite)
	if err != nil {
		if ctx.Err() != nil {
			return SaveResult{}, ctx.Err()
		}
		if errors.Is(err, storage.ErrExist) {
			return SaveResult{}, fmt.Errorf("save training set to %s: %w", uri, fs.ErrExist)
		}
		return SaveResult{}, fmt.Errorf("save training set to %s: %w", uri, err)
	}
	return SaveResult{Rows: n, Bytes: info.Size, Format: format, ETag: info.ETag}, nil
}

// checkAbsent fails with an error wrapping fs.ErrExist when an object is
// at key.
func (e *Engine) checkAbsent(ctx context.Context, b storage.Bucket, key string) error {
	_, err := b.Stat(ctx, key)
	switch {
	case err == nil:
		return fmt.Errorf("save training set to %s: %w", b.URI(key), fs.ErrExist)
	case errors.Is(err, storage.ErrNotFound):
		return nil
	case errors.Is(err, storage.ErrBucketNotFound), errors.Is(err, storage.ErrInvalid):
		return fmt.Errorf("%w: save training set: %w", ErrInvalidRequest, err)
	}
	return fmt.Errorf("save training set: %w", err)
}

// upload stores the file at tmp as the object at key. Without overwrite,
// a file smaller than the part size is created with PutIfAbsent (held in
// memory, atomic among concurrent creators); a larger one is checked
// with a Stat once more and put, since a conditional create takes its
// body in memory and in one request.
func (e *Engine) upload(ctx context.Context, b storage.Bucket, key, tmp string, overwrite bool) (storage.ObjectInfo, error) {
	fh, err := os.Open(tmp)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	defer fh.Close() // read-only
	st, err := fh.Stat()
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if !overwrite {
		if st.Size() < e.partSize() {
			data := make([]byte, st.Size())
			if _, err := fh.ReadAt(data, 0); err != nil {
				return storage.ObjectInfo{}, err
			}
			return b.PutIfAbsent(ctx, key, data)
		}
		if err := e.checkAbsent(ctx, b, key); err != nil {
			return storage.ObjectInfo{}, err
		}
	}
	return b.Put(ctx, key, fh)
}

// partSize is the store's part size: bodies below it go in one request.
func (e *Engine) partSize() int64 {
	if ps := int64(e.opts.Storage.S3.PartSize); ps > 0 {
		return ps
	}
	return storage.DefaultPartSize
}

// saveTempDir is where a set saved to object storage is built: the
// engine's TempDirectory when set (created when missing), else the
// system's temporary directory ($TMPDIR).
func (e *Engine) saveTempDir() (string, error) {
	if d := e.opts.TempDirectory; d != "" {
		return d, os.MkdirAll(d, 0o755)
	}
	return os.TempDir(), nil
}

// StatObject opens the bucket of an object-storage URI (with the
// engine's storage configuration) and describes the object it names. A
// missing object or bucket fails with an error wrapping
// storage.ErrNotFound or storage.ErrBucketNotFound.
func (e *Engine) StatObject(ctx context.Context, uri string) (storage.Bucket, storage.ObjectInfo, error) {
	b, key, err := e.store.Open(ctx, uri)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	info, err := b.Stat(ctx, key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	return b, info, nil
}

// FetchObject returns a held local copy, in the engine's object cache, of
// the version of an object that info (from StatObject) describes,
// downloading it unless the cache has a copy of that version (same ETag
// and size). An object replaced since info was read fails with an error
// wrapping objcache.ErrChanged. The caller releases the Entry once it no
// longer reads the copy; until then the cache does not evict it.
func (e *Engine) FetchObject(ctx context.Context, b storage.Bucket, info storage.ObjectInfo) (*objcache.Entry, error) {
	cache, err := e.objectCache()
	if err != nil {
		return nil, err
	}
	return cache.Fetch(ctx, b, info)
}
