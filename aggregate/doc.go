// Package aggregate computes the windowed aggregations of stream feature
// views (count, sum, avg, min, max, last over a window) from tiles: the
// events of one entity are folded into partial states per tile of the
// view's hop, and a window is the combination of its tiles. The streaming
// materializer keeps one State per entity and view as an online row; a
// lookup evaluates the row at its clock.
//
// # Semantics
//
// The value at time T aggregates the view's events of the entity with
//
//	floor(T, hop) - window <= event_ts <= T
//
// where floor divides Unix microseconds by the hop in microseconds,
// rounding down (also before 1970); tiles are the half-open intervals
// [k*hop, (k+1)*hop). This is rule 5 of the point-in-time join, so that
// online values equal training values. Nulls are ignored by every
// function: count of a column counts its non-null values, count without a
// column counts events. An empty window gives count 0 and null for every
// other function. avg is sum/count as float64; sum of an integer column is
// an int64 (it wraps on overflow), of a float column a float64. min and
// max order NaN above every number. last is the value of the latest event
// whose column is not null; of events with one event time, the one applied
// later wins.
//
// A tile cannot be split, so Evaluate counts the tile that holds T whole:
// events later than T in that tile are counted too. This differs from the
// rule only for events later than T, which the materializer never has:
// it evaluates at its watermark, the greatest event time applied, and a
// lookup evaluates at its clock, which is later still.
//
// Float sums and averages are added tile by tile, so their last bits may
// differ from a sum over the events in another order.
//
// # Usage
//
// The materializer, for each view with aggregations:
//
//  1. builds a Spec once per definitions version with NewSpec;
//  2. for each event of an entity, reads the entity's row and decodes it
//     with Decode (no row: a new, zero State; an error wrapping
//     ErrSpecChanged: the definitions changed, start a zero State and
//     rebuild from the stream);
//  3. folds the event in with Apply, which skips replays: an event whose
//     offset is not greater than the last one applied from its partition
//     changes nothing, so replaying after a crash is idempotent;
//  4. calls Prune, which drops the tiles no lookup at or after the max
//     event time reads, and writes Encode's row back (event-time guarded:
//     the row's event time is its max event time, which never decreases).
//
// Apply also drops events too old to matter, whose tile starts before
// floor(max event time, hop) - max window; their offsets are recorded all
// the same. Evaluate at a time before the max event time may therefore
// miss such events; at or after it, it is exact.
//
// An event far in the future moves the max event time, and with it what
// is too old, forward: the stream should reject events with implausible
// times before they reach Apply. Offsets are compared per partition, so a
// source topic that is deleted and created again (its offsets restart)
// needs its views' rows deleted.
//
// Lookups call EvaluateEncoded on the stored row at their clock. It walks
// the row once, materializing only the latest last value of each window.
//
// # Cost
//
// Apply is amortized constant time per event (events mostly arrive in
// time order and land in the newest tile). A row holds one tile per hop
// that saw events, up to max window / hop + 1 after Prune, and evaluating
// it is linear in its tiles: an entity with events in every minute holds
// 1441 tiles of a 1d window with a 1m hop (about 30 bytes per tile for a
// few aggregations). For hot lookups of busy entities, choose a hop that
// keeps the longest window to a few hundred tiles.
//
// # Concurrency and ownership
//
// A Spec is immutable and safe for concurrent use. A State is owned by one
// goroutine at a time. Apply copies what it keeps of an event (bytes and
// lists), so the event's memory may be reused after Apply returns. Values
// that Evaluate returns may share memory with the State; values that
// EvaluateEncoded returns never share memory with the row.
//
// # Encoding
//
// A State is encoded as an online row of format 2 (tiles): the same
// 13-byte header as a plain row of format 1 (format byte, event time,
// fingerprint), so that stores guard writes by event time without knowing
// the format, followed by the offsets and the tiles in varints, tile
// indexes delta-encoded. See Encode's file for the layout. Decode never
// panics on arbitrary input.
//
// Of Quiver it imports only registry (the definitions) and value (the value
// types and the row format it shares with online rows); never online,
// offline, server, cmd or sdk.
package aggregate
