package offline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/plan"
	"github.com/quiverdata/quiver/registry"
)

// LatestEventTimeColumn is the event-time column of Latest's result.
const LatestEventTimeColumn = "__quiver_event_time"

// LatestRequest asks for each entity's latest row of a view.
type LatestRequest struct {
	Defs *registry.Definitions
	View string
	// Start and End bound the rows' event times, both inclusive; a zero
	// Start means no lower bound.
	Start, End time.Time
}

// Latest streams, for every entity of the view's source with rows in
// [Start, End], its latest row by the rules of training sets (greatest
// event time, then created time, then source order): the join keys, the
// view's features in OutputFeatures order, and LatestEventTimeColumn. It
// is what batch materialization writes to the online store. For a view
// over a stream source, the rows are its offline log's; a view with
// aggregations has no latest row and is refused. The caller must Release
// the reader.
func (e *Engine) Latest(ctx context.Context, req *LatestRequest) (array.RecordReader, error) {
	if req.Defs == nil {
		return nil, invalidf("no definitions")
	}
	v := req.Defs.FeatureView(req.View)
	if v == nil {
		return nil, invalidf("unknown feature view %q", req.View)
	}
	if len(v.Aggregations) > 0 {
		// An aggregate is a window evaluated at a time, not a row to pick.
		return nil, invalidf("view %s has aggregations, which have no latest row; the streaming materializer keeps them online, and training sets evaluate them at each entity row's time", v.Name)
	}
	// The view's features, as a training set of view:* would read them (a
	// stream view's rows are read from its offline log).
	pl, err := e.plans.Get(req.Defs, plan.Request{Features: []string{v.Name + ":*"}})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	pv := &plan.View{View: v, Source: req.Defs.Source(v.Source), Keys: req.Defs.JoinKeys(v)} // a view without features
	if len(pl.Views) == 1 {
		pv = pl.Views[0]
	}
	p := &viewPlan{view: v, source: pv.Source, keys: joinKeys(pv, nil)}
	for _, f := range pv.Features {
		p.features = append(p.features, outputFeature{ResolvedFeature: registry.ResolvedFeature{View: v.Name, Feature: f.Feature, Type: f.Type}, column: f.Feature})
	}
	return e.render.latest(ctx, p, req)
}

// latest reads a view's latest rows with DuckDB.
func (r duckRenderer) latest(ctx context.Context, p *viewPlan, req *LatestRequest) (array.RecordReader, error) {
	e, v := r.e, p.view
	conn, err := e.conn(ctx)
	if err != nil {
		return nil, err
	}
	st := &staged{}
	closeConn := func() error {
		err := conn.Close()
		st.release()
		return err
	}
	proj, err := viewProjection(p, nil)
	if err != nil {
		return nil, err
	}
	rel, err := e.sourceRelation(ctx, conn, p, st, proj)
	if err != nil {
		_ = closeConn() // the relation error is the one to report
		return nil, err
	}
	var keys, where, fields, out []string
	for _, k := range p.keys {
		keys = append(keys, quoteIdent(k.joinKey))
		where = append(where, quoteIdent(k.joinKey)+" IS NOT NULL")
		out = append(out, quoteIdent(k.joinKey))
	}
	for i, f := range p.features {
		fields = append(fields, fmt.Sprintf("f%d := f%d", i, i))
		out = append(out, fmt.Sprintf("r.f%d AS %s", i, quoteIdent(f.column)))
	}
	fields = append(fields, "ts := "+colTS)
	out = append(out, "r.ts AS "+LatestEventTimeColumn)
	where = append(where, colTS+" IS NOT NULL", fmt.Sprintf("%s <= make_timestamp(%d)", colTS, req.End.UnixMicro()))
	if !req.Start.IsZero() {
		where = append(where, fmt.Sprintf("%s >= make_timestamp(%d)", colTS, req.Start.UnixMicro()))
	}
	q := fmt.Sprintf("SELECT %s FROM (SELECT %s, arg_max(struct_pack(%s), %s) AS r FROM (%s) WHERE %s GROUP BY ALL)",
		strings.Join(out, ", "), strings.Join(keys, ", "), strings.Join(fields, ", "), colKey, rel, strings.Join(where, " AND "))
	ar, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		_ = closeConn()
		return nil, err
	}
	rr, err := ar.QueryContext(ctx, q)
	if err != nil {
		_ = closeConn()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read latest rows of %s: %s", v.Name, duckErr(err))
	}
	return resultReader(rr, closeConn), nil
}
