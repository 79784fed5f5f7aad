package offline

import (
	"fmt"
	"strings"
)

// joinForm is how the training-set query joins a view with features to
// the entity rows (rules 1 to 3).
type joinForm int

const (
	// joinAsof is DuckDB's ASOF LEFT JOIN on the join keys and the
	// ordering key of rule 2: the default.
	joinAsof joinForm = iota
	// joinUnion is the form for engines without an as-of join (Spark
	// SQL): the entity rows and the view's rows in one relation,
	// partitioned by join key and ordered by event time, feature rows
	// before entity rows of the same time, then created time, then source
	// order; each entity row takes the last feature row before it with a
	// windowed last value that ignores nulls. It sorts each key's rows
	// once, never pairs an entity row with more than one candidate (no
	// range join), and keeps a hot key's cost linear in its rows.
	joinUnion
)

// Columns of the union form.
const (
	colKind = "__quiver_kind" // 0: a feature row, 1: an entity row
	colT    = "__quiver_t"    // the row's event time
	colC    = "__quiver_c"    // a feature row's created time
	colO    = "__quiver_o"    // a feature row's source order
	colM    = "__quiver_m"    // the chosen feature row, as a struct
)

// unionJoinSQL renders the union form for view p over rel (its
// sourceRelation: join keys, f0..., colTS and the ordering key colKey)
// and the entity table: one row per entity row with a time and non-null
// keys, its row number, the chosen row's features f0... and event time
// colTS (all null when no row qualifies). The training-set query left-
// joins it on the row number and applies the ttl to colTS.
func unionJoinSQL(p *viewPlan, rel, ts string) string {
	keys := make([]string, len(p.keys))
	entityKeys := make([]string, len(p.keys))
	sourceKeys := make([]string, len(p.keys))
	var notNull []string
	for i, k := range p.keys {
		keys[i] = fmt.Sprintf("__quiver_k%d", i)
		entityKeys[i] = fmt.Sprintf("%s AS %s", castTo("", quoteIdent(k.entityCol), k.typ), keys[i])
		sourceKeys[i] = fmt.Sprintf("%s AS %s", quoteIdent(k.joinKey), keys[i])
		notNull = append(notNull, quoteIdent(k.entityCol)+" IS NOT NULL")
	}
	created := "NULL::TIMESTAMP"
	if p.source.CreatedTimestampField != "" {
		created = colKey + ".c"
	}
	n := len(p.features)
	var nullFeats, feats, fields, out []string
	for j := range n {
		f := fmt.Sprintf("f%d", j)
		nullFeats = append(nullFeats, fmt.Sprintf("NULL AS %s", f))
		feats = append(feats, f)
		fields = append(fields, fmt.Sprintf("%s := %s", f, f))
		out = append(out, fmt.Sprintf("%s.%s AS %s", colM, f, f))
	}
	fields = append(fields, fmt.Sprintf("t := %s", colT))
	entityRows := fmt.Sprintf("SELECT %s, %s, %s AS %s, 1 AS %s, NULL::TIMESTAMP AS %s, NULL::BIGINT AS %s",
		colRow, strings.Join(entityKeys, ", "), ts, colT, colKind, colC, colO)
	if n > 0 {
		entityRows += ", " + strings.Join(nullFeats, ", ")
	}
	entityRows += fmt.Sprintf(" FROM %s WHERE %s IS NOT NULL AND %s", entitiesTable, ts, strings.Join(notNull, " AND "))
	featureRows := fmt.Sprintf("SELECT NULL::BIGINT AS %s, %s, %s AS %s, 0 AS %s, coalesce(%s, '-infinity'::TIMESTAMP) AS %s, %s.o AS %s",
		colRow, strings.Join(sourceKeys, ", "), colTS, colT, colKind, created, colC, colKey, colO)
	if n > 0 {
		featureRows += ", " + strings.Join(feats, ", ")
	}
	featureRows += fmt.Sprintf(" FROM (%s) WHERE %s IS NOT NULL", rel, colTS)
	for _, k := range p.keys {
		featureRows += " AND " + quoteIdent(k.joinKey) + " IS NOT NULL"
	}
	window := fmt.Sprintf("last_value(CASE WHEN %s = 0 THEN struct_pack(%s) END IGNORE NULLS) OVER (PARTITION BY %s ORDER BY %s ASC NULLS FIRST, %s ASC, %s ASC NULLS FIRST, %s ASC NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
		colKind, strings.Join(fields, ", "), strings.Join(keys, ", "), colT, colKind, colC, colO)
	sel := append(append([]string{colRow}, out...), fmt.Sprintf("%s.t AS %s", colM, colTS))
	return fmt.Sprintf("SELECT %s FROM (SELECT %s, %s, %s AS %s FROM (%s UNION ALL %s)) WHERE %s = 1",
		strings.Join(sel, ", "), colRow, colKind, window, colM, entityRows, featureRows, colKind)
}
