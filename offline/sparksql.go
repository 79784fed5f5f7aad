package offline

import (
	"fmt"
	"strings"

	"github.com/quiverdata/quiver/registry"
)

// Spark SQL of the Spark engine (spark.go): the forms of sql.go,
// union.go, window.go and latest.go in Spark's dialect. Times are
// TIMESTAMP (the session's time zone is UTC, so a TIMESTAMP_NTZ or a
// date is read as UTC, as DuckDB reads naive times); times in the result
// are TIMESTAMP_NTZ, as DuckDB's TIMESTAMP is naive.

// sparkTypes are the Spark types that hold values of each scalar type.
var sparkTypes = [...]string{
	registry.Int32:     "INT",
	registry.Int64:     "BIGINT",
	registry.Float32:   "FLOAT",
	registry.Float64:   "DOUBLE",
	registry.Bool:      "BOOLEAN",
	registry.String:    "STRING",
	registry.Bytes:     "BINARY",
	registry.Timestamp: "TIMESTAMP",
}

// sparkType is the Spark type that holds values of t.
func sparkType(t registry.ValueType) string {
	var s string
	if int(t.Elem) < len(sparkTypes) {
		s = sparkTypes[t.Elem]
	}
	if t.List {
		s = "ARRAY<" + s + ">"
	}
	return s
}

// sparkOutType is the type of a value of t in the result.
func sparkOutType(t registry.ValueType) string {
	return strings.ReplaceAll(sparkType(t), "TIMESTAMP", "TIMESTAMP_NTZ")
}

// sparkOut casts a result value of type t to its type in the result.
func sparkOut(expr string, t registry.ValueType) string {
	if t.Elem != registry.Timestamp {
		return expr
	}
	return "CAST(" + expr + " AS " + sparkOutType(t) + ")"
}

func sparkTimestamp(have string) bool {
	return have == "timestamp" || have == "timestamp_ntz" || have == "date"
}

func sparkInteger(have string) bool {
	return have == "tinyint" || have == "smallint" || have == "int" || have == "bigint"
}

// sparkCastable is castable for Spark's type names (as DESCRIBE gives
// them).
func sparkCastable(have string, want registry.ValueType) bool {
	if want.List {
		elem, ok := strings.CutPrefix(have, "array<")
		if !ok || !strings.HasSuffix(elem, ">") {
			return false
		}
		return sparkCastable(strings.TrimSuffix(elem, ">"), registry.ValueType{Elem: want.Elem})
	}
	if strings.HasPrefix(have, "array<") {
		return false
	}
	switch want.Elem {
	case registry.Int32, registry.Int64:
		return sparkInteger(have)
	case registry.Float32, registry.Float64:
		return sparkInteger(have) || have == "float" || have == "double" || strings.HasPrefix(have, "decimal")
	case registry.Bool:
		return have == "boolean"
	case registry.String:
		return have == "string" || strings.HasPrefix(have, "varchar(") || strings.HasPrefix(have, "char(")
	case registry.Bytes:
		return have == "binary"
	case registry.Timestamp:
		return sparkTimestamp(have)
	}
	return false
}

// sparkCast converts a column of Spark type have to the type that holds
// want, leaving it alone when it already is.
func sparkCast(have, expr string, want registry.ValueType) string {
	if strings.EqualFold(have, sparkType(want)) {
		return expr
	}
	return "CAST(" + expr + " AS " + sparkType(want) + ")"
}

// sparkIdent quotes an identifier (or a path, as in parquet.`path`).
func sparkIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// sparkString quotes s as a Spark SQL string literal (backslash escapes).
func sparkString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// sparkTrainingSetSQL renders the training set: the entity columns ents
// in order, each view's features, the on-demand views' request fields,
// in input order. ts is the entity table's timestamp column.
//
// With a per-row cutoff (Request.AsOfColumn), views with features are
// joined by sparkCutoffJoinSQL instead of the union form.
func sparkTrainingSetSQL(plans []*viewPlan, sources []string, ents []column, ts column, demands []*demand, cutoff column) string {
	tsExpr := sparkCast(ts.typ, sparkIdent(ts.name), registry.TypeTimestamp)
	var sel []string
	for _, c := range ents {
		sel = append(sel, "e."+sparkIdent(c.name))
	}
	var joins strings.Builder
	for i, p := range plans {
		v := fmt.Sprintf("v%d", i)
		if p.aggregated() {
			for j, f := range p.features {
				x := fmt.Sprintf("%s.a%d", v, j)
				if p.aggs[j].Function == registry.AggCount {
					x = "coalesce(" + x + ", 0)"
				}
				sel = append(sel, sparkOut(x, f.Type)+" AS "+sparkIdent(f.column))
			}
			fmt.Fprintf(&joins, " LEFT JOIN (%s) AS %s ON %s.%s = e.%s", windowSQL(sparkDialect{}, p, sources[i], tsExpr), v, v, colRow, colRow)
			continue
		}
		// Entity rows without a time or with a null key have no row in
		// the union; the ttl bounds the chosen row's time.
		cond := ""
		if ttl := p.view.TTL.Std(); ttl > 0 {
			cond = fmt.Sprintf("unix_micros(%s.%s) >= unix_micros(e.%s) - %d", v, colTS, colTS, ttl.Microseconds())
		}
		for j, f := range p.features {
			x := fmt.Sprintf("%s.f%d", v, j)
			if cond != "" {
				x = "CASE WHEN " + cond + " THEN " + x + " END"
			}
			sel = append(sel, sparkOut(x, f.Type)+" AS "+sparkIdent(f.column))
		}
		join := sparkUnionSQL(p, sources[i], tsExpr)
		if cutoff.name != "" {
			join = sparkCutoffJoinSQL(p, sources[i], sparkCast(ts.typ, "e."+sparkIdent(ts.name), registry.TypeTimestamp),
				sparkCast(cutoff.typ, "e."+sparkIdent(cutoff.name), registry.TypeTimestamp))
		}
		fmt.Fprintf(&joins, " LEFT JOIN (%s) AS %s ON %s.%s = e.%s", join, v, v, colRow, colRow)
	}
	for _, d := range demands {
		for j, f := range d.view.Request {
			sel = append(sel, fmt.Sprintf("CAST(e.%s AS %s) AS %s", sparkIdent(d.reqFrom[j]), sparkOutType(f.Type), sparkIdent(d.reqCols[j])))
		}
	}
	return fmt.Sprintf("SELECT %s FROM (SELECT *, %s AS %s FROM %s) AS e%s ORDER BY e.%s",
		strings.Join(sel, ", "), tsExpr, colTS, entitiesTable, joins.String(), colRow)
}

// sparkCutoffJoinSQL is cutoffJoinSQL in Spark's dialect: each entity
// row's greatest row by rule 2 among its key's rows at or before its time
// ts and known at its cutoff cut, as colRow, f0, f1, ... and colTS.
func sparkCutoffJoinSQL(p *viewPlan, rel, ts, cut string) string {
	var on []string
	for _, k := range p.keys {
		on = append(on, fmt.Sprintf("e.%s = v.%s", sparkIdent(k.entityCol), sparkIdent(k.joinKey)))
	}
	known, order := "v."+colTS, "v."+colTS+" DESC"
	if p.source.CreatedTimestampField != "" {
		known = fmt.Sprintf("coalesce(v.%s, v.%s)", colC, colTS)
		order += ", v." + colC + " DESC NULLS LAST"
	}
	order += fmt.Sprintf(", v.%s DESC, v.%s DESC", colFile, colIdx)
	on = append(on, fmt.Sprintf("v.%s <= %s", colTS, ts), fmt.Sprintf("%s <= %s", known, cut))
	sel := []string{"e." + colRow, "v." + colTS}
	out := []string{colRow, colTS}
	for j := range p.features {
		sel = append(sel, fmt.Sprintf("v.f%d", j))
		out = append(out, fmt.Sprintf("f%d", j))
	}
	return fmt.Sprintf("SELECT %s FROM (SELECT %s, row_number() OVER (PARTITION BY e.%s ORDER BY %s) AS __quiver_rn FROM %s AS e JOIN (%s) AS v ON %s) WHERE __quiver_rn = 1",
		strings.Join(out, ", "), strings.Join(sel, ", "), colRow, order, entitiesTable, rel, strings.Join(on, " AND "))
}

// sparkKeys renders a view's join keys on the entity rows (cast to the
// keys' types, as k0, k1, ...) and their not-null conditions.
func sparkKeys(p *viewPlan, prefix string) (keys, entityKeys, sourceKeys, notNull []string) {
	for i, k := range p.keys {
		keys = append(keys, fmt.Sprintf("%s%d", prefix, i))
		entityKeys = append(entityKeys, fmt.Sprintf("CAST(%s AS %s) AS %s", sparkIdent(k.entityCol), sparkType(k.typ), keys[i]))
		sourceKeys = append(sourceKeys, fmt.Sprintf("%s AS %s", sparkIdent(k.joinKey), keys[i]))
		notNull = append(notNull, sparkIdent(k.entityCol)+" IS NOT NULL")
	}
	return keys, entityKeys, sourceKeys, notNull
}

// sparkUnionSQL is unionJoinSQL in Spark's dialect: rel is the view's
// sparkSession.sourceRelation, ts the entity rows' time.
func sparkUnionSQL(p *viewPlan, rel, ts string) string {
	keys, entityKeys, sourceKeys, notNull := sparkKeys(p, "__quiver_k")
	created := "CAST(NULL AS TIMESTAMP)"
	if p.source.CreatedTimestampField != "" {
		created = colC
	}
	var nullFeats, feats, fields, out []string
	for j := range p.features {
		f := fmt.Sprintf("f%d", j)
		nullFeats = append(nullFeats, "NULL AS "+f)
		feats = append(feats, f)
		fields = append(fields, fmt.Sprintf("'%s', %s", f, f))
		out = append(out, fmt.Sprintf("%s.%s AS %s", colM, f, f))
	}
	fields = append(fields, "'t', "+colT)
	entityRows := append([]string{colRow}, entityKeys...)
	entityRows = append(entityRows, ts+" AS "+colT, "1 AS "+colKind, "CAST(NULL AS TIMESTAMP) AS "+colC,
		"CAST(NULL AS STRING) AS "+colFile, "CAST(NULL AS BIGINT) AS "+colIdx)
	entityRows = append(entityRows, nullFeats...)
	featureRows := append([]string{"CAST(NULL AS BIGINT) AS " + colRow}, sourceKeys...)
	featureRows = append(featureRows, colTS+" AS "+colT, "0 AS "+colKind, created+" AS "+colC, colFile, colIdx)
	featureRows = append(featureRows, feats...)
	featureWhere := []string{colTS + " IS NOT NULL"}
	for _, k := range p.keys {
		featureWhere = append(featureWhere, sparkIdent(k.joinKey)+" IS NOT NULL")
	}
	window := fmt.Sprintf("last(CASE WHEN %s = 0 THEN named_struct(%s) END, true) OVER (PARTITION BY %s ORDER BY %s, %s, %s ASC NULLS FIRST, %s, %s ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
		colKind, strings.Join(fields, ", "), strings.Join(keys, ", "), colT, colKind, colC, colFile, colIdx)
	sel := append(append([]string{colRow}, out...), fmt.Sprintf("%s.t AS %s", colM, colTS))
	return fmt.Sprintf("SELECT %s FROM (SELECT %s, %s, %s AS %s FROM (SELECT %s FROM %s WHERE %s IS NOT NULL AND %s UNION ALL SELECT %s FROM (%s) WHERE %s)) WHERE %s = 1",
		strings.Join(sel, ", "), colRow, colKind, window, colM,
		strings.Join(entityRows, ", "), entitiesTable, ts, strings.Join(notNull, " AND "),
		strings.Join(featureRows, ", "), rel, strings.Join(featureWhere, " AND "), colKind)
}

// sparkDialect is Spark SQL's (windowSQL).
type sparkDialect struct{}

func (sparkDialect) ident(name string) string { return sparkIdent(name) }
func (sparkDialect) epochUS(ts string) string { return "unix_micros(" + ts + ")" }
func (sparkDialect) modFloor(x string, m int64) string {
	return fmt.Sprintf("pmod(%s, %d)", x, m)
}
func (sparkDialect) intDiv(x string, m int64) string { return fmt.Sprintf("(%s) div %d", x, m) }
func (sparkDialect) integers(lo, hi string) string {
	return fmt.Sprintf("explode(sequence(%s, %s))", lo, hi)
}

// intSum sums exactly in DECIMAL(38,0), so that Spark's ANSI mode cannot
// overflow, and wraps that to BIGINT.
func (sparkDialect) intSum(x, filter string) string {
	return fmt.Sprintf("CAST(pmod(sum(CAST(%s AS DECIMAL(38,0)))%s + 9223372036854775808BD, 18446744073709551616BD) - 9223372036854775808BD AS BIGINT)", x, filter)
}
func (sparkDialect) fromMicros(x string) string { return "timestamp_micros(" + x + ")" }
func (sparkDialect) naive(x string) string      { return "CAST(" + x + " AS TIMESTAMP_NTZ)" }
func (sparkDialect) latestOf(x string) string {
	return fmt.Sprintf("max_by(%s, named_struct('t', v.%s, 'f', v.%s, 'i', v.%s))", x, colUS, colFile, colIdx)
}

// sparkLatestSQL is the query of Latest in Spark's dialect.
func sparkLatestSQL(p *viewPlan, rel string, req *LatestRequest) string {
	var keys, where, fields, out []string
	for _, k := range p.keys {
		keys = append(keys, sparkIdent(k.joinKey))
		where = append(where, sparkIdent(k.joinKey)+" IS NOT NULL")
		out = append(out, sparkIdent(k.joinKey))
	}
	for i, f := range p.features {
		fields = append(fields, fmt.Sprintf("'f%d', f%d", i, i))
		out = append(out, sparkOut(fmt.Sprintf("r.f%d", i), f.Type)+" AS "+sparkIdent(f.column))
	}
	fields = append(fields, "'ts', "+colTS)
	out = append(out, "CAST(r.ts AS TIMESTAMP_NTZ) AS "+LatestEventTimeColumn)
	created := "CAST(NULL AS TIMESTAMP)"
	if p.source.CreatedTimestampField != "" {
		created = colC
	}
	where = append(where, colTS+" IS NOT NULL", fmt.Sprintf("%s <= timestamp_micros(%d)", colTS, req.End.UnixMicro()))
	if !req.Start.IsZero() {
		where = append(where, fmt.Sprintf("%s >= timestamp_micros(%d)", colTS, req.Start.UnixMicro()))
	}
	return fmt.Sprintf("SELECT %s FROM (SELECT %s, max_by(named_struct(%s), named_struct('t', %s, 'c', %s, 'f', %s, 'i', %s)) AS r FROM (%s) WHERE %s GROUP BY %s)",
		strings.Join(out, ", "), strings.Join(keys, ", "), strings.Join(fields, ", "), colTS, created, colFile, colIdx, rel, strings.Join(where, " AND "), strings.Join(keys, ", "))
}
