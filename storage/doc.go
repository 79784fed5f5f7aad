// Package storage reads and writes objects on the local file system and on
// S3-compatible object stores (AWS S3, MinIO, Ceph, Cloudflare R2) through
// one small interface, so that every path Quiver takes can be either a
// local path or an s3://bucket/key URI.
//
// # Addresses
//
// [ParseURI] accepts "s3://bucket/key", "file:///abs/path" and plain local
// paths (relative or absolute). [Store.Open] turns a URI into a [Bucket]
// and a key within it: an S3 URI opens the named bucket (one client per
// bucket, kept by the Store) with the [S3Options] of quiver.yaml's storage
// section ([Config]); a local path opens a [Local] bucket rooted at the
// file system root, with the absolute path as its key. [NewLocal] and
// [NewS3] open one bucket directly.
//
//	st := storage.NewStore(cfg.StorageConfig())
//	b, key, err := st.Open(ctx, "s3://features/stats/2024-01.parquet")
//	obj, err := b.Open(ctx, key)
//	defer obj.Close()
//	pf, err := file.NewParquetReader(obj) // arrow-go, ranged GETs underneath
//
// Keys are slash-separated. A [Local] bucket refuses keys that would leave
// its root ("..", absolute keys, empty segments); an S3 bucket takes any
// non-empty key of at most 1,024 bytes.
//
// # Globs
//
// [Glob] expands a pattern over a bucket's keys with the rules Quiver uses
// for local paths: Go's path.Match, where "*" and "?" never cross a "/",
// "[...]" is a character class, "**" is refused and "{" is an ordinary
// character. Only the part of the pattern before its first glob character
// is sent to the store as a listing prefix.
//
// # Reading
//
// [Bucket.Open] returns an [Object], an io.ReaderAt and io.ReadSeeker over
// one version of an object: it satisfies parquet.ReaderAtSeeker, so
// arrow-go's file.NewParquetReader reads Parquet straight from S3. On S3 a
// ReadAt larger than the part size is split into ranged GETs that run in
// parallel (at most Concurrency at once); every GET is pinned to the
// ETag seen at Open, so an object replaced during a read is an error, not
// a mix of two versions. A connection cut mid-read, or silent for
// ReadTimeout, is retried from where it stopped, up to MaxRetries times,
// and then reported: a ReadAt never returns fewer bytes than asked without
// an error, and never waits on a store that stopped answering.
//
// # Writing
//
// [Bucket.Put] publishes an object only once it is complete: on the local
// file system through a synced temporary file renamed into place
// (internal/durable); on S3 by one PUT for a body smaller than the part
// size and by a multipart upload otherwise, completed only after every
// part is stored and aborted on any failure, so no reader ever sees a part
// of an object. [Bucket.PutIfAbsent] creates an object only if its key is
// free, atomically among concurrent writers: a hard link on the local file
// system, "If-None-Match: *" on S3. Exactly one of several concurrent
// creators of a key succeeds; the others get [ErrExist].
//
// # Errors
//
// Every error of a bucket operation is an [*Error] naming the operation,
// the bucket and the key; [ErrNotFound], [ErrBucketNotFound], [ErrExist]
// and [ErrInvalid] are matched with errors.Is (the errors of [ParseURI]
// and [CheckGlob] wrap ErrInvalid). The package logs nothing, and no error
// holds a credential.
//
// # Concurrency and ownership
//
// Buckets are safe for concurrent use. An [Object] may be read with ReadAt
// from several goroutines at once; Read and Seek share one offset and are
// for one goroutine. The context given to Open bounds every read of the
// Object. The caller closes every Object it opens. A byte slice
// given to PutIfAbsent is not retained after the call returns.
package storage
