// Package offline is Quiver's offline store: Parquet sources read by
// embedded DuckDB, and point-in-time-correct training sets built with ASOF
// joins and streamed as Arrow record batches.
//
// # Semantics
//
// For each entity row r with timestamp T and each requested view V:
//
//  1. Candidates are V's rows with the same join-key values and
//     T - ttl <= event_ts <= T (no lower bound when ttl is 0).
//  2. The chosen row has the greatest event_ts; ties go to the greatest
//     created_ts (a null created_ts is the smallest); remaining ties go to
//     the row that comes last in source order (files in lexical path order,
//     rows in file order).
//  3. No candidate, a null join key or a null T: the features are null.
//  4. The output has exactly one row per input row, in input order, with
//     every input column carried through, then the features, named feature
//     or, with FullFeatureNames, view__feature.
//  5. A view with aggregations: each aggregation over window W is computed
//     from the events with the same join-key values and
//     floor(T, hop) - W <= event_ts <= T, floor counting hops from the Unix
//     epoch; nulls are ignored, an empty window gives count 0 and null
//     otherwise, last breaks ties in event time by source order. This is
//     what package aggregate computes online.
//  6. Timestamps are UTC with microsecond precision; naive timestamps mean
//     UTC.
//
// Views over stream sources (kafka, push) read the view's offline log,
// the Parquet files of package streamlog that its manifests commit (by
// explicit list, never a glob), in the log's source order; a view nothing
// was logged for reads as an empty relation of the declared types.
//
// # Object storage
//
// A Parquet source or an entity table may be an s3:// URI (a key or a
// glob), and the data root an s3://bucket/prefix URI (Options.DataRoot,
// Options.Storage). Such objects are staged (stage.go): listed or looked
// up on every request, copied into a bounded local cache keyed by bucket,
// key, ETag and size (internal/objcache, Options.Cache) unless a copy of
// their current version is there, and read by read_parquet from the
// copies in key order, which is their source order. The copies a request
// reads are held until its reader is released. DuckDB never reaches the
// store and never installs or loads an extension by itself.
//
// # How it runs
//
// The entity table is copied into a DuckDB temporary table with its row
// number and normalized timestamp. Each view becomes one ASOF LEFT JOIN
// whose inequality compares structs (event_ts, created_ts, file index, row
// in file): DuckDB's ASOF picks the greatest candidate not after T in that
// order, which is rule 2 exactly, at the cost of one sort per view. The ttl
// bound is applied to the chosen row (rule 1: if the latest row is too old,
// every older one is too). A view with aggregations is instead one join
// of the entity rows to its events on the join keys, a time bucket and the
// longest window, grouped by entity row with a FILTER per shorter window
// (see windowSQL), left-joined by row number. The result is ordered by
// input row number.
//
// # Layout
//
// A training set starts as a request plan (package plan, cached per
// registry version and request shape): the columns in request order, the
// stored views to read and the on-demand views with their hidden inputs,
// the same plan online lookups answer from. resolve (plan.go) derives what
// a training set adds: output and internal column names, the entity-table
// column of every join key (JoinKeyMap), the aggregations' inputs. The
// output order is the training set's own: the entity table's columns, the
// stored features view by view in the order the plan reads them, then the
// on-demand features.
//
// The engine-independent half (request.go, plan.go, renderer.go,
// entities.go's checks, the demandReader of ondemand.go, Save's durable
// write through internal/durable, save.go) calls a renderer (renderer.go) for the rest:
// load the entity table, describe it, check the sources and render the
// query, run it, describe its schema, copy it to Parquet, explain it.
// DuckDB is the first renderer (duckdb.go, sql.go, window.go, the loading
// of entities.go, explain.go); a second engine implements the same two
// interfaces without touching the planner. Latest (batch
// materialization's read, planned like a training set of view:*) and Head
// are DuckDB's directly. Every reader here (readers.go, ondemand.go) is
// built on internal/refreader, under its one reference-count rule.
//
// # Use
//
//	eng, err := offline.Open(offline.Options{DataRoot: "data"})
//	defer eng.Close()
//	rr, err := eng.TrainingSet(ctx, &offline.Request{
//		Defs:     snapshot.Defs,
//		Entities: offline.EntitiesFromParquet("labels.parquet"),
//		Features: []string{"driver_hourly:*"},
//	})
//	defer rr.Release()
//	for rr.Next() { use(rr.RecordBatch()) }
//	err = rr.Err()
//
// or, to save it (the extension picks Arrow IPC or Parquet; batches and
// row groups of at most SaveBatchRows rows):
//
//	res, err := eng.Save(ctx, req, "data/sets/train.arrow", offline.SaveOptions{})
//
// # Concurrency and ownership
//
// An Engine is safe for concurrent use; each training set runs on its own
// DuckDB connection, which the returned reader holds until Release. The
// reader is for one goroutine. A batch returned by RecordBatch is valid
// until the next call to Next; Retain it to keep it longer. The whole result
// is never held in Go memory: DuckDB computes it within its memory limit,
// spilling to its temp directory, and the reader converts one DuckDB chunk
// at a time.
package offline
