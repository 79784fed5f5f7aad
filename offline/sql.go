package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
)

// sourceRelation renders the SQL relation of a view's source, projected to
// its join keys, its inputs (f0, f1, ...), its event time and ordering
// key, after checking that the source has every column with a usable type.
// For a view with features the ordering key is the struct of rule 2
// (colKey); for a view with aggregations it is the source order alone
// (colOrd), which breaks ties of last. The copies of objects it stages
// (a source on object storage) are held by st until the request ends;
// they hold only the columns and row groups of proj (slice.go).
func (e *Engine) sourceRelation(ctx context.Context, conn *duckdb.Conn, p *viewPlan, st *staged, proj *projection) (string, error) {
	src := p.source
	what := sourceWhat(src)
	// order is the source order of rule 2: (file, row in file) packed
	// into one integer, files in lexical order.
	var from, order string
	switch {
	case src.Kind == registry.SourceParquet:
		order = "(file_index::BIGINT << 40) + file_row_number"
		uri, remote := e.remotePath(src.Path)
		if !remote {
			from = "read_parquet(" + quoteString(src.Path) + ", union_by_name = true)"
			break
		}
		what = uri
		files, err := e.stage(ctx, uri, st, proj)
		if err != nil {
			return "", stageError(fmt.Sprintf("source %s (%s)", src.Name, what), err)
		}
		from = "read_parquet(" + parquetFiles(files) + ", union_by_name = true)"
	case src.Kind == registry.SourceDuckDBQuery:
		if e.remoteRoot {
			return "", invalidf("source %s (duckdb_query): queries read local files, and the data root %s is on object storage; use a parquet source", src.Name, e.dataRoot)
		}
		from = "(" + src.Query + ")"
		order = "(row_number() OVER ())::BIGINT"
	case src.Kind.IsStream():
		// The view's offline log, read like a Parquet source: only the
		// files a manifest commits, by explicit list (a glob would see
		// files being written), in the log's source order.
		what = fmt.Sprintf("%s, offline log %s", src.Kind, filepath.ToSlash(filepath.Join(streamlog.Dir, p.view.Name)))
		files, err := e.logFiles(ctx, p.view.Name, st, proj)
		if err != nil {
			return "", fmt.Errorf("source %s (%s): %w", src.Name, what, err)
		}
		if len(files) == 0 {
			// Nothing logged yet: no rows, with the declared types.
			from, order = emptyRelation(src.Schema), "0::BIGINT"
			break
		}
		quoted := make([]string, len(files))
		for i, f := range files {
			quoted[i] = quoteString(f)
		}
		from = "read_parquet([" + strings.Join(quoted, ", ") + "], union_by_name = true)"
		order = "(file_index::BIGINT << 40) + file_row_number"
	default:
		return "", invalidf("source %s of kind %s cannot be read offline", src.Name, src.Kind)
	}
	cols, err := describe(ctx, conn, "SELECT * FROM "+from)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: source %s (%s, data root %s): %s", ErrInvalidRequest, src.Name, what, e.dataRoot, duckErr(err))
	}
	sc, err := checkSource(duckRenderer{e}, p, what, cols)
	if err != nil {
		return "", err
	}
	var sel []string
	for _, c := range sc.cols {
		sel = append(sel, fmt.Sprintf("%s AS %s", castTo(c.typ, quoteIdent(c.name), c.want), quoteIdent(c.alias)))
	}
	ts := castTo(sc.ts.typ, quoteIdent(sc.ts.name), registry.TypeTimestamp)
	var created string
	if sc.created != nil {
		created = castTo(sc.created.typ, quoteIdent(sc.created.name), registry.TypeTimestamp)
	}
	where := asOfWhere(p, ts, created, fmt.Sprintf("make_timestamp(%d)", p.asOf.UnixMicro()))
	if p.aggregated() {
		// Rule 5 reads every event in the window; created times play no
		// part but for as_of, and source order breaks ties of last.
		sel = append(sel, ts+" AS "+colTS, order+" AS "+colOrd)
		return fmt.Sprintf("SELECT %s FROM %s%s", strings.Join(sel, ", "), from, where), nil
	}
	// The ordering key of rule 2. A null event time makes the struct's
	// first field null, which sorts after every time, so the row is never
	// chosen; rows with null keys are matched to entity rows with null keys
	// by DuckDB's ASOF join and discarded in the projection (filtering them
	// here costs a third of the join's time).
	key := fmt.Sprintf("struct_pack(t := %s, o := %s)", ts, order)
	if sc.created != nil {
		key = fmt.Sprintf("struct_pack(t := %s, c := coalesce(%s, '-infinity'::TIMESTAMP), o := %s)", ts, created, order)
	}
	sel = append(sel, ts+" AS "+colTS, key+" AS "+colKey)
	return fmt.Sprintf("SELECT %s FROM %s%s", strings.Join(sel, ", "), from, where), nil
}

// asOfWhere is the WHERE clause that keeps the source rows known at the
// request's as_of time, cutoff in the engine's SQL: created at or before
// it, a row without a created time (which rule 2 ranks oldest) by its
// event time, as every row of a source without created times; "" without
// as_of. ts and created are the engine's expressions of the row's times
// (created "" for a source without them).
func asOfWhere(p *viewPlan, ts, created, cutoff string) string {
	if p.asOf.IsZero() {
		return ""
	}
	if created == "" {
		return fmt.Sprintf(" WHERE %s <= %s", ts, cutoff)
	}
	return fmt.Sprintf(" WHERE coalesce(%s, %s) <= %s", created, ts, cutoff)
}

// sourceColumns are the columns of a source a view plan reads, checked
// against the source's columns as an engine describes them.
type sourceColumns struct {
	// cols are the join keys, under their names, then the inputs, as
	// f0, f1, ... (viewPlan.inputs).
	cols []sourceColumn
	// ts is the timestamp field; created the created timestamp field of
	// a source that has one, for a view with features or a request as of
	// a time.
	ts      column
	created *column
}

// sourceColumn is a source column (after field_mapping), its engine type,
// the value type it is read as, and its alias in the source relation.
type sourceColumn struct {
	column
	want  registry.ValueType
	alias string
}

// checkSource checks that a source (what, for messages), described by
// cols in an engine's types, has every column p reads with a usable type.
func checkSource(types colTypes, p *viewPlan, what string, cols []column) (sourceColumns, error) {
	src := p.source
	byName := map[string]column{}
	for _, c := range cols {
		byName[c.name] = c
	}
	// sourceCol finds the source column a view column comes from.
	sourceCol := func(name string) string {
		for from, to := range src.FieldMapping {
			if to == name {
				return from
			}
		}
		return name
	}
	need := func(col, role string, ok func(string) bool, want string) (column, error) {
		c, found := byName[col]
		if !found {
			return c, invalidf("source %s (%s) has no column %q (%s)", src.Name, what, col, role)
		}
		if !ok(c.typ) {
			return c, invalidf("source %s column %q is %s; %s must be %s", src.Name, col, c.typ, role, want)
		}
		return c, nil
	}
	var sc sourceColumns
	for _, k := range p.keys {
		c, err := need(sourceCol(k.joinKey), "join key "+k.joinKey, func(t string) bool { return types.keyType(t, k.typ) }, k.typ.String())
		if err != nil {
			return sc, err
		}
		sc.cols = append(sc.cols, sourceColumn{column: c, want: k.typ, alias: k.joinKey})
	}
	ins, _, err := p.inputs()
	if err != nil {
		return sc, err
	}
	for i, in := range ins {
		c, err := need(sourceCol(in.name), in.role, func(t string) bool { return types.castable(t, in.typ) }, in.typ.String())
		if err != nil {
			return sc, err
		}
		sc.cols = append(sc.cols, sourceColumn{column: c, want: in.typ, alias: fmt.Sprintf("f%d", i)})
	}
	if sc.ts, err = need(src.TimestampField, "the timestamp field", types.timestampType, "a timestamp"); err != nil {
		return sc, err
	}
	if src.CreatedTimestampField != "" && (!p.aggregated() || !p.asOf.IsZero()) {
		c, err := need(src.CreatedTimestampField, "the created timestamp field", types.timestampType, "a timestamp")
		if err != nil {
			return sc, err
		}
		sc.created = &c
	}
	return sc, nil
}

// emptyRelation is a relation without rows whose columns are the declared
// fields, with their types.
func emptyRelation(fields []*registry.Field) string {
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = fmt.Sprintf("NULL::%s AS %s", duckType(f.Type), quoteIdent(f.Name))
	}
	if len(cols) == 0 {
		cols = []string{"NULL AS " + internalPrefix + "none"}
	}
	return "(SELECT " + strings.Join(cols, ", ") + " WHERE false)"
}

// castTo converts a column expression of DuckDB type have to the type that
// holds want, leaving it alone when it already is.
func castTo(have, expr string, want registry.ValueType) string {
	if have == duckType(want) {
		return expr
	}
	if have == "TIMESTAMP WITH TIME ZONE" && want == registry.TypeTimestamp {
		// The same UTC instant, from its microseconds: a CAST goes through
		// the session's time zone (ICU), about 50 times slower.
		return fmt.Sprintf("make_timestamp(epoch_us(%s))", expr)
	}
	return fmt.Sprintf("CAST(%s AS %s)", expr, duckType(want))
}

// entityKey is the left side of the ordering comparison: the entity row's
// time with null tie-breakers, which compare greater than any value, so
// that every candidate at time T qualifies.
func entityKey(p *viewPlan, ts string) string {
	if p.source.CreatedTimestampField != "" {
		return fmt.Sprintf("struct_pack(t := %s, c := NULL::TIMESTAMP, o := NULL::BIGINT)", ts)
	}
	return fmt.Sprintf("struct_pack(t := %s, o := NULL::BIGINT)", ts)
}

func sourceWhat(s *registry.Source) string {
	if s.Kind == registry.SourceParquet {
		return s.Path
	}
	return string(s.Kind)
}

// trainingSetSQL renders the point-in-time join: one ASOF LEFT JOIN per
// view with features, the ttl bound on the chosen row; one LEFT JOIN per
// view with aggregations to its windows per entity row (windowSQL); input
// order. tsType is the DuckDB type of the entity table's timestamp
// column. form chooses how each view with features is joined
// (joinForm).
//
// With a per-row cutoff (Request.AsOfColumn), views with features are
// joined by cutoffJoinSQL instead: no as-of join can filter by a bound
// that differs per entity row.
func trainingSetSQL(plans []*viewPlan, sources []string, tsCol, tsType string, demands []*demand, form joinForm, cutoff column) string {
	ts := castTo(tsType, quoteIdent(tsCol), registry.TypeTimestamp)
	var b strings.Builder
	b.WriteString("SELECT e.* EXCLUDE (" + colRow + ", " + colTS)
	for i, p := range plans {
		if !p.aggregated() {
			fmt.Fprintf(&b, ", %s%d", colKey, i)
		}
	}
	b.WriteString(")")
	for i, p := range plans {
		v := fmt.Sprintf("v%d", i)
		if p.aggregated() {
			// Entity rows the window join has no events for (or that have
			// a null key or time) get no row: count 0, the rest null.
			for j, f := range p.features {
				if p.aggs[j].Function == registry.AggCount {
					fmt.Fprintf(&b, ", coalesce(%s.a%d, 0) AS %s", v, j, quoteIdent(f.column))
				} else {
					fmt.Fprintf(&b, ", %s.a%d AS %s", v, j, quoteIdent(f.column))
				}
			}
			continue
		}
		// A match counts only for an entity row with a time and non-null
		// keys (DuckDB matches null keys to each other), within the ttl.
		conds := []string{"e." + colTS + " IS NOT NULL"}
		for _, k := range p.keys {
			conds = append(conds, "e."+quoteIdent(k.entityCol)+" IS NOT NULL")
		}
		if ttl := p.view.TTL.Std(); ttl > 0 {
			conds = append(conds, fmt.Sprintf("%s.%s >= e.%s - to_microseconds(%d)", v, colTS, colTS, ttl.Microseconds()))
		}
		cond := strings.Join(conds, " AND ")
		for j, f := range p.features {
			fmt.Fprintf(&b, ", CASE WHEN %s THEN %s.f%d END AS %s", cond, v, j, quoteIdent(f.column))
		}
	}
	for _, d := range demands {
		for j, f := range d.view.Request {
			fmt.Fprintf(&b, ", CAST(e.%s AS %s) AS %s", quoteIdent(d.reqFrom[j]), duckType(f.Type), quoteIdent(d.reqCols[j]))
		}
	}
	fmt.Fprintf(&b, " FROM (SELECT *, %s AS %s", ts, colTS)
	for i, p := range plans {
		if !p.aggregated() {
			fmt.Fprintf(&b, ", %s AS %s%d", entityKey(p, ts), colKey, i)
		}
	}
	fmt.Fprintf(&b, " FROM %s) AS e", entitiesTable)
	for i, p := range plans {
		v := fmt.Sprintf("v%d", i)
		if p.aggregated() {
			fmt.Fprintf(&b, " LEFT JOIN (%s) AS %s ON %s.%s = e.%s", windowSQL(duckDialect{}, p, sources[i], ts), v, v, colRow, colRow)
			continue
		}
		if cutoff.name != "" {
			ets := castTo(tsType, "e."+quoteIdent(tsCol), registry.TypeTimestamp)
			cut := castTo(cutoff.typ, "e."+quoteIdent(cutoff.name), registry.TypeTimestamp)
			fmt.Fprintf(&b, " LEFT JOIN (%s) AS %s ON %s.%s = e.%s", cutoffJoinSQL(p, sources[i], ets, cut), v, v, colRow, colRow)
			continue
		}
		if form == joinUnion {
			fmt.Fprintf(&b, " LEFT JOIN (%s) AS %s ON %s.%s = e.%s", unionJoinSQL(p, sources[i], ts), v, v, colRow, colRow)
			continue
		}
		fmt.Fprintf(&b, " ASOF LEFT JOIN (%s) AS %s ON ", sources[i], v)
		for _, k := range p.keys {
			fmt.Fprintf(&b, "e.%s = %s.%s AND ", quoteIdent(k.entityCol), v, quoteIdent(k.joinKey))
		}
		fmt.Fprintf(&b, "e.%s%d >= %s.%s", colKey, i, v, colKey)
	}
	b.WriteString(" ORDER BY e." + colRow)
	return b.String()
}

// cutoffJoinSQL joins view p to the entity rows when each row has its own
// as_of cutoff (cut, an expression of the entity table): every row of the
// key at or before T that was known at the cutoff (created at or before
// it, or without a created time by its event time), the greatest by rule
// 2's key chosen per entity row. It is a range join, so its cost grows
// with the rows each key has before T; the ttl is checked by the caller on
// the chosen row, as for the as-of join. rel is the view's source
// relation, ts the entity rows' time.
func cutoffJoinSQL(p *viewPlan, rel, ts, cut string) string {
	var on, sel []string
	for _, k := range p.keys {
		on = append(on, fmt.Sprintf("e.%s = v.%s", quoteIdent(k.entityCol), quoteIdent(k.joinKey)))
	}
	known := "v." + colTS
	if p.source.CreatedTimestampField != "" {
		known = fmt.Sprintf("CASE WHEN v.%s.c = '-infinity'::TIMESTAMP THEN v.%s ELSE v.%s.c END", colKey, colTS, colKey)
	}
	on = append(on, fmt.Sprintf("v.%s <= %s", colTS, ts), fmt.Sprintf("%s <= %s", known, cut))
	sel = append(sel, "e."+colRow, "v."+colTS)
	for j := range p.features {
		sel = append(sel, fmt.Sprintf("v.f%d", j))
	}
	return fmt.Sprintf("SELECT %s FROM %s AS e JOIN (%s) AS v ON %s QUALIFY row_number() OVER (PARTITION BY e.%s ORDER BY v.%s DESC) = 1",
		strings.Join(sel, ", "), entitiesTable, rel, strings.Join(on, " AND "), colRow, colKey)
}
