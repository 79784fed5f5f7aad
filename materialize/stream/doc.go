// Package stream is the streaming materializer: it applies the events of
// stream sources (Kafka messages, pushed rows) to the online store and to
// each view's offline log (package streamlog), through one Applier.
//
// # Usage
//
//  1. NewApplier(defs, store, dataRoot, metrics, now) plans every stream
//     and push source of a registry snapshot: their views, decoders and
//     offline logs. A new registry version takes a new Applier.
//  2. Recover(grace) once at start removes what a crash left in the logs.
//  3. Consume(ctx, KafkaOptions{Brokers: ...}) reads the kafka sources
//     until ctx ends, as one member of a consumer group; PushJSON and
//     PushRows apply pushed rows (the server's push API, sdk/embedded).
//
// The stream stays in this package's hands: a caller never writes the
// online rows or the log files of a stream view itself.
//
// # The path of an event
//
//  1. Decode and validate: the message holds every schema field with a
//     value of its type; required fields are not null; every time is in
//     the valid range (registry.MinTime up to registry.MaxTime: years 1900
//     through 9999), and the event time is at most Applier.MaxFuture
//     ahead of the clock. Nothing is written before this passes.
//  2. Write online: per view, the entity's latest event (event-time
//     guarded) or the events folded into the entity's tiles (replays
//     skipped by offset, written with a compare-and-set).
//  3. Append to the offline log, durably, and only then commit the offset.
//
// # Failures
//
// A message that can never be applied (step 1 refuses it, or the online
// encoding refuses a value: an *EventError) goes to the dead-letter topic
// with its reason, and the partition goes on. Any other failure is an
// outage of a sink and is retried with backoff, never skipped; meanwhile
// the partition is stalled, which Metrics shows (the stalled gauge,
// retries, the lag from the first message not yet durable, Stalls) and the
// log says. A partition that cannot run at all stops Consume with its
// error.
//
// A push (PushJSON, PushRows) validates every row first, then writes the
// log's files without committing them, then the online store, then
// commits the log's manifests, so that a failing sink leaves the other
// unchanged where it can (see push.go).
//
// # Concurrency
//
// An Applier is safe for concurrent use by one goroutine per (source,
// partition); pushes of a source take turns (the server serializes them).
// Consume runs one goroutine per assigned partition, owned by Consume: all
// have returned when it returns.
//
// # Ownership
//
// The online store is the caller's: an Applier writes to it and never
// closes it; close it after Consume has returned and the last push has
// answered. A push is applied, online and in the log, when PushJSON or
// PushRows returns, and its rows are not kept: the caller may reuse them.
// One Metrics may serve successive Appliers (the server builds one
// Applier per registry version).
package stream
