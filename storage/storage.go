package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Bucket is one namespace of objects: an S3 bucket, or a directory of the
// local file system. Keys are slash-separated and relative to the bucket.
type Bucket interface {
	// Stat describes the object at key, or fails with ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Open opens the object at key for reading; ctx bounds every request
	// made while the Object is read. It fails with ErrNotFound when no
	// object is there. The caller closes the Object.
	Open(ctx context.Context, key string) (Object, error)
	// List returns the objects whose keys start with prefix, in lexical
	// key order. Incomplete writes (temporary files, multipart uploads
	// not yet completed) are never listed.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Put stores everything r yields as the object at key, replacing any
	// object there. The object becomes visible only once it is complete;
	// on failure the old object (or none) stays.
	Put(ctx context.Context, key string, r io.Reader) (ObjectInfo, error)
	// PutIfAbsent stores data as the object at key only if no object is
	// there, atomically among concurrent writers; it fails with ErrExist
	// otherwise.
	PutIfAbsent(ctx context.Context, key string, data []byte) (ObjectInfo, error)
	// Delete removes the object at key; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// URI returns the address of key in this bucket, for messages.
	URI(key string) string
}

// Object is one version of an object opened for reading. It satisfies
// parquet.ReaderAtSeeker. ReadAt is safe for concurrent use; Read and Seek
// share one offset.
type Object interface {
	io.ReaderAt
	io.ReadSeeker
	io.Closer
	// Info describes the version being read.
	Info() ObjectInfo
}

// ObjectInfo describes an object.
type ObjectInfo struct {
	// Key is the object's key within its bucket.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// ModTime is when the object was last written.
	ModTime time.Time
	// ETag identifies the object's content version: the store's entity
	// tag on S3 (quotes removed); on the local file system a tag made of
	// the file's size, modification time and inode, which changes
	// whenever the file is replaced.
	ETag string
}

// Sentinel errors, matched with errors.Is.
var (
	// ErrNotFound: no object at the key.
	ErrNotFound = errors.New("quiver: object not found")
	// ErrBucketNotFound: the bucket (or local root) does not exist.
	ErrBucketNotFound = errors.New("quiver: bucket not found")
	// ErrExist: PutIfAbsent found an object at the key.
	ErrExist = errors.New("quiver: object already exists")
	// ErrInvalid: a malformed URI, key or glob.
	ErrInvalid = errors.New("quiver: invalid storage address")
)

// Error is the error of one storage operation. Its message names the
// operation and the object's address, never a credential.
type Error struct {
	// Op is the operation: "stat", "read", "list", "put", "create",
	// "delete", "open", "glob".
	Op string
	// URI is the address of the object or prefix the operation was on.
	URI string
	// Err is the cause; it may wrap one of the sentinel errors.
	Err error
}

func (e *Error) Error() string { return e.Op + " " + e.URI + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }
