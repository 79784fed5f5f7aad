// Package materialize keeps the online store consistent with the offline
// store. Batch materialization reads, per online view, each entity's latest
// row in a time range from the offline store (offline.Engine.Latest, a
// streaming DuckDB query) and writes it to the online store in bounded
// chunks; writes are event-time guarded, so re-running is idempotent and
// never replaces a newer value. Incremental runs resume from a watermark
// per view, kept in the online store beside the rows (one value per view,
// overwritten: it does not grow).
//
// A run stops at the first error: a write that fails cancels the offline
// query, so nothing more is read or encoded, and a row whose event time
// (or another timestamp value) is outside registry.MinTime and
// registry.MaxTime stops it with an error naming the view, row and
// entity. Rows written before the error stay; re-running is idempotent.
//
// The streaming materializer lives in the subpackage stream (Kafka and
// pushed rows → online + the offline log); Verify checks what it wrote:
// the online store against the point-in-time join at the stream's
// watermark.
//
// It is the only core package that imports both online and offline (the
// server and the CLI, which wire components together, do too).
package materialize
