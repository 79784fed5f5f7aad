package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/quiverdata/quiver/storage"
)

// ObjectBackend keeps snapshots as objects in a storage.Bucket, under a
// prefix, with the names the directory backend gives its files:
//
//	PREFIX/versions/00000000000000000042.json
//
// The fixed-width number makes the store's lexical listing the version
// order. Create is Bucket.PutIfAbsent ("If-None-Match: *" on S3, a hard
// link on the local file system): of several concurrent creators of one
// version exactly one succeeds and the others get ErrVersionExists, so
// Store.Apply plans again on top of the winner. A PUT is atomic, so no
// reader sees part of a version.
//
// Keys under the prefix that are not version objects (other files, other
// registries' prefixes, names of another width) are ignored. A version
// object that does not decode, or whose hash does not match, is reported
// by Store with its number and its key (ObjectBackend is a Locator).
//
// ObjectBackend is safe for concurrent use, also by several processes
// sharing one bucket: it keeps no state of its own.
type ObjectBackend struct {
	bucket storage.Bucket
	prefix string // "" or ending in "/"
}

var (
	_ Backend = (*ObjectBackend)(nil)
	_ Locator = (*ObjectBackend)(nil)
)

// MaxSnapshotBytes bounds the size of a version object that
// ObjectBackend reads: a larger one is reported, not read into memory.
const MaxSnapshotBytes = 256 << 20

// NewObjectBackend returns a backend over the objects of b under prefix
// (a key prefix such as "registry/prod"; "" for the bucket's root). A
// trailing slash is optional.
func NewObjectBackend(b storage.Bucket, prefix string) *ObjectBackend {
	prefix = strings.TrimRight(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &ObjectBackend{bucket: b, prefix: prefix}
}

func (b *ObjectBackend) versionsPrefix() string { return b.prefix + "versions/" }

// Key is the key of version v within the bucket.
func (b *ObjectBackend) Key(v int64) string {
	return fmt.Sprintf("%s%0*d.json", b.versionsPrefix(), versionDigits, v)
}

// Location implements Locator: the URI of version v's object.
func (b *ObjectBackend) Location(v int64) string { return b.bucket.URI(b.Key(v)) }

// Versions implements Backend: one listing of PREFIX/versions/. Objects
// there whose names are not a 20-digit positive number and ".json" are
// ignored, as are keys in deeper "directories".
func (b *ObjectBackend) Versions(ctx context.Context) ([]int64, error) {
	objs, err := b.bucket.List(ctx, b.versionsPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(objs))
	for _, o := range objs {
		v, ok := parseVersionName(strings.TrimPrefix(o.Key, b.versionsPrefix()))
		if !ok {
			continue
		}
		out = append(out, v) // List sorts by key; fixed width sorts numerically
	}
	return out, nil
}

// parseVersionName reads "00000000000000000042.json" as 42.
func parseVersionName(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, ".json")
	if !ok || len(digits) != versionDigits {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v <= 0 {
		return 0, false
	}
	return v, true
}

// Read implements Backend. A version object larger than
// MaxSnapshotBytes is an error.
func (b *ObjectBackend) Read(ctx context.Context, v int64) ([]byte, error) {
	key := b.Key(v)
	obj, err := b.bucket.Open(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d (%s)", ErrVersionNotFound, v, b.bucket.URI(key))
	}
	if err != nil {
		return nil, err
	}
	data, err := readObject(obj)
	if cerr := obj.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read registry version %d at %s: %w", v, b.bucket.URI(key), err)
	}
	return data, nil
}

func readObject(obj storage.Object) ([]byte, error) {
	size := obj.Info().Size
	if size > MaxSnapshotBytes {
		return nil, fmt.Errorf("the object has %d bytes, more than a snapshot may have (%d)", size, MaxSnapshotBytes)
	}
	data := make([]byte, size)
	if size == 0 {
		return data, nil
	}
	n, err := obj.ReadAt(data, 0)
	if n == len(data) {
		return data, nil // io.EOF with a full buffer is success
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("read %d of %d bytes: %w", n, size, err)
}

// Create implements Backend with Bucket.PutIfAbsent. When the key is
// taken, Create reads what is there: if it holds exactly data, the taker
// was this very write (a PUT retried after the store had already stored
// it, whose answer was lost) and Create succeeds; otherwise it returns
// ErrVersionExists.
func (b *ObjectBackend) Create(ctx context.Context, v int64, data []byte) error {
	key := b.Key(v)
	_, err := b.bucket.PutIfAbsent(ctx, key, data)
	if errors.Is(err, storage.ErrExist) {
		if have, rerr := b.Read(ctx, v); rerr == nil && bytes.Equal(have, data) {
			return nil
		}
		return fmt.Errorf("%w: %d (%s)", ErrVersionExists, v, b.bucket.URI(key))
	}
	return err
}
