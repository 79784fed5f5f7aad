package offline

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/quiverdata/quiver/registry"
)

// A training set is built in two halves. The half that is the same for
// every engine lives in this package beside the renderer interface:
// planning the request (package plan, through resolve), naming outputs
// and hidden columns, mapping join keys to entity-table columns
// (JoinKeyMap), checking the entity table against the plan
// (checkEntities), computing on-demand features over the result's Arrow
// batches (demandReader) and writing output files. The other half, which
// knows a query engine, is a renderer; DuckDB (duckRenderer) is the first.
//
// A second engine (Spark, say) implements renderer and session in this
// package, with an Open of its own that sets Engine.render; the planner
// and the half above do not change. What it must keep is the contract of
// the result (rule 4 of the package manual): one row per entity row, in
// input order, the entity table's columns, then each view's features in
// resolved order under their output names, then each on-demand view's
// request-field columns (demand.reqCols, cast to the fields' types) for
// demandReader to read and drop.

// renderer is a query engine that builds training sets.
type renderer interface {
	colTypes
	// begin opens one training set's session (a connection, a job) and
	// loads the entity table into it, numbered in input order. A problem
	// with the table given is an ErrInvalidRequest.
	begin(ctx context.Context, ents Entities) (session, error)
	// latest streams the latest rows of the view of p (Engine.Latest).
	latest(ctx context.Context, p *viewPlan, req *LatestRequest) (array.RecordReader, error)
}

// colTypes says how an engine's column types, as its sessions describe
// them, meet feature types.
type colTypes interface {
	// timestampType reports whether a column holds event times.
	timestampType(have string) bool
	// keyType reports whether a column may hold join keys of type want.
	keyType(have string, want registry.ValueType) bool
	// castable reports whether a column may be read as type want without
	// losing meaning.
	castable(have string, want registry.ValueType) bool
}

// session is one training set on one engine. It is used by one
// goroutine; close releases it unless run handed it to a reader.
type session interface {
	// entityColumns describes the loaded entity table: its columns in
	// order, by name and engine type, without the engine's own.
	entityColumns(ctx context.Context) ([]column, error)
	// render checks the columns every view's source must have and renders
	// the query of res, entity rows timed by the entity column ts (as
	// entityColumns described it). Problems with the sources are
	// ErrInvalidRequest.
	render(ctx context.Context, res *resolved, ts column) error
	// run starts the rendered query. The reader owns the session: its
	// last Release closes it. On error the session is closed.
	run(ctx context.Context) (array.RecordReader, error)
	// schema is the rendered query's result schema, without running it.
	schema(ctx context.Context) (*arrow.Schema, error)
	// copyParquet writes the rendered query's result (a request without
	// on-demand features) to a zstd Parquet file at path, returning the
	// number of rows.
	copyParquet(ctx context.Context, path string) (int64, error)
	// explain returns the rendered query and the engine's plan for it;
	// with analyze, the plan is run and annotated with timings.
	explain(ctx context.Context, analyze bool) (string, error)
	close()
}

// prepare plans the request, opens a session with the entity table,
// checks the table's columns against the plan and renders the query.
func (e *Engine) prepare(ctx context.Context, req *Request) (session, *resolved, error) {
	res, err := e.resolve(req)
	if err != nil {
		return nil, nil, err
	}
	if err := e.planSpine(req); err != nil {
		return nil, nil, err
	}
	tsCol := req.TimestampColumn
	if tsCol == "" {
		tsCol = DefaultTimestampColumn
	}
	s, err := e.render.begin(ctx, req.Entities)
	if err != nil {
		return nil, nil, err
	}
	cols, err := s.entityColumns(ctx)
	if err == nil {
		err = checkEntities(e.render, cols, tsCol, res.plans, res.columns, res.demands)
	}
	if err == nil && res.cutoff.name != "" {
		err = invalidf("entity table has no column %q for as_of_column", res.cutoff.name)
		for _, c := range cols {
			if c.name == res.cutoff.name {
				if !e.render.timestampType(c.typ) {
					err = invalidf("entity table column %q is %s; as_of_column must be a timestamp or date", c.name, c.typ)
				} else {
					res.cutoff, err = c, nil
				}
			}
		}
	}
	if err == nil {
		ts := column{name: tsCol}
		for _, c := range cols {
			if c.name == tsCol {
				ts = c
			}
		}
		err = s.render(ctx, res, ts)
	}
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, res, nil
}
