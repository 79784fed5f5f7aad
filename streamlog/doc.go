// Package streamlog is the offline log of stream feature views: the events
// the streaming materializer (and the push API) applied online, kept as
// Parquet so that training sets read exactly what serving saw.
//
// # Layout
//
// Each stream view has its own directory under the offline data root:
//
//	<data_root>/_stream/<view>/date=2026-11-23/<batch>-0.parquet
//	<data_root>/_stream/<view>/_manifests/<batch>.json
//
// A batch is one flush of one writer: for Kafka, the events of one
// partition between two offsets; for push, one group of pushed rows. Its
// events are split by event date (UTC) into one file per date. The columns
// are the source's declared schema fields, with their source names and
// types (timestamps as microseconds without a zone, meaning UTC), so the
// offline store reads the log like a Parquet source of the same schema.
//
// # Commit protocol
//
// Append writes every file of a batch to a temporary name, syncs it and
// renames it into place, then writes the batch's manifest the same way and
// syncs the directories. The manifest is the commit record: Files lists
// only files that a manifest names, so a crash between the steps leaves
// garbage (removed by Recover) but never a half-visible batch. A manifest
// records the stream, partition and the first and last source offsets of
// the batch, so after a crash a writer learns from Offsets which events
// are already logged and does not log them twice.
//
// Append is Prepare then Commit. Prepare writes and syncs the files but
// no manifest, so a writer that has another sink to write (the push path:
// log files, then the online store, then the manifest) can still drop
// the batch with Abort, and no reader ever saw it. Every event time must
// be within registry.MinTime and registry.MaxTime (years 1900 through
// 9999), or zero for an event without a time (its timestamp value is
// null; the offline engine skips it); Prepare refuses a batch holding one
// outside, before it writes.
//
// # On object storage
//
// OpenStore opens a log below an s3:// data root too, with the same
// layout as keys below the root's prefix; ReadManifests and Objects read
// it (Manifests and Files read local roots only). There, each data file
// is one complete object (storage.Bucket.Put: no reader ever sees part
// of one), and Commit creates the manifest with PutIfAbsent after every
// data object of the batch is stored. A manifest key is the batch name,
// so two writers of one Kafka batch (the same partition and offsets)
// cannot both commit it: the second gets ErrCommitted, and Abort then
// removes its own data objects, whose names carry a random tag so they
// never replace the first writer's. A create whose answer was lost is
// read back, so a retried create that had succeeded is not reported as a
// loss. Recover deletes data objects that no manifest names once they
// are older than the grace period. Prepare and Commit take no context:
// the store's timeouts and retries bound their requests.
//
// # Concurrency
//
// A Log may be used by one goroutine per (stream, partition) at a time;
// Append calls for different partitions may run concurrently. Several
// processes may share a data root when they own different partitions, as
// consumers in one Kafka group do. Files and Offsets read the directory
// and are safe to call from anywhere.
package streamlog
