package offline

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/quiverdata/quiver/registry"
)

// Rule 5, windowed aggregations. For each entity row with time T and
// non-null join keys, an aggregation over window W reads the view's events
// with the same keys and
//
//	floor(T, hop) - W <= event_ts <= T
//
// where floor rounds Unix microseconds down to a multiple of the hop (also
// before 1970). Nulls are ignored by every function; count without a
// column counts events; an empty window gives count 0 and null for the
// other functions; sum of an integer column is a BIGINT that wraps on
// overflow, of a float column a DOUBLE; avg is that sum over the count, as
// DOUBLE; min and max keep the column's type; last is the value of the
// latest event whose column is not null, ties in event time going to the
// event later in source order. Events without an event time are ignored,
// and the view's ttl does not apply (the windows bound what is counted).
// This is what package aggregate computes online from tiles.

// Column names of the window join.
const (
	colUS     = "__quiver_us"     // a time in Unix microseconds
	colFloor  = "__quiver_floor"  // floor(T, hop), µs
	colLo     = "__quiver_lo"     // floor(T, hop) - window, µs, one per window
	colBucket = "__quiver_bucket" // the join's time bucket
	colK      = "__quiver_k"      // an entity row's join key
)

// windowSQL renders rule 5 for a view with aggregations over rel (its
// sourceRelation): one row per entity row that has events in its longest
// window, its row number and the aggregates a0, a1, ... of the requested
// features. Entity rows without such events have no row; the training-set
// query left-joins this and turns their counts into 0.
//
// It is one join from the entity rows to the events on the join keys and
// floor(T) - longest window <= event_ts <= T, grouped by entity row, each
// shorter window filtering its aggregates. DuckDB runs it as a hash join on
// the equalities with the range as a residual predicate, so the join also
// matches on a bucket of the event time whose width is the longest window
// plus the hop: an entity row's range is shorter than that, so it meets at
// most two buckets, and the entity row is repeated once per bucket it
// meets. An entity row is then compared with the events of its key near T
// instead of every event of its key, however long the log. Each event falls
// in one bucket, so no pair is counted twice.
func windowSQL(d dialect, p *viewPlan, rel, ts string) string {
	hop := p.view.Hop.Std().Microseconds()
	var windows []int64 // distinct windows, longest first
	for _, a := range p.aggs {
		if w := a.Window.Std().Microseconds(); !slices.Contains(windows, w) {
			windows = append(windows, w)
		}
	}
	slices.SortFunc(windows, func(a, b int64) int { return cmp.Compare(b, a) })
	maxW := windows[0]
	bucket := maxW + hop
	divFloor := func(x string, m int64) string {
		return d.intDiv(fmt.Sprintf("(%s) - %s", x, d.modFloor("("+x+")", m)), m)
	}

	// The entity rows with a time and every key: T in µs, floor(T), the
	// lower bound of each window and the buckets of [floor(T) - max, T].
	var keys, notNull []string
	for j, k := range p.keys {
		keys = append(keys, fmt.Sprintf("%s AS %s%d", d.ident(k.entityCol), colK, j))
		notNull = append(notNull, d.ident(k.entityCol)+" IS NOT NULL")
	}
	rows := fmt.Sprintf("SELECT %s, %s, %s AS %s FROM %s WHERE %s IS NOT NULL AND %s",
		colRow, strings.Join(keys, ", "), d.epochUS(ts), colUS, entitiesTable, ts, strings.Join(notNull, " AND "))
	floored := fmt.Sprintf("SELECT *, %s - %s AS %s FROM (%s)", colUS, d.modFloor(colUS, hop), colFloor, rows)
	var lows []string
	for i, w := range windows {
		lows = append(lows, fmt.Sprintf("%s - %d AS %s%d", colFloor, w, colLo, i))
	}
	entities := fmt.Sprintf("SELECT %s, %s, %s, %s, %s AS %s FROM (%s)",
		colRow, strings.Join(colKs(len(p.keys)), ", "), colUS, strings.Join(lows, ", "),
		d.integers(divFloor(fmt.Sprintf("%s - %d", colFloor, maxW), bucket), divFloor(colUS, bucket)), colBucket, floored)

	events := fmt.Sprintf("SELECT *, %s AS %s FROM (SELECT *, %s AS %s FROM (%s))",
		divFloor(colUS, bucket), colBucket, d.epochUS(colTS), colUS, rel)

	// The aggregates, in feature order.
	var aggs []string
	for j, a := range p.aggs {
		w := slices.Index(windows, a.Window.Std().Microseconds())
		var conds []string
		if w > 0 {
			conds = append(conds, fmt.Sprintf("v.%s >= e.%s%d", colUS, colLo, w))
		}
		x := ""
		if in := p.aggInput[j]; in >= 0 {
			x = fmt.Sprintf("v.f%d", in)
		}
		filter := func(extra ...string) string {
			c := append(append([]string{}, extra...), conds...)
			if len(c) == 0 {
				return ""
			}
			return " FILTER (WHERE " + strings.Join(c, " AND ") + ")"
		}
		integer := false
		if f := p.source.SchemaField(a.Column); f != nil {
			integer = f.Type.Elem == registry.Int32 || f.Type.Elem == registry.Int64
		}
		sum := "sum(" + x + ")" + filter()
		if integer {
			sum = d.intSum(x, filter())
		}
		var expr string
		switch a.Function {
		case registry.AggCount:
			if x == "" {
				expr = "count(*)" + filter()
			} else {
				expr = "count(" + x + ")" + filter()
			}
		case registry.AggSum:
			expr = sum
		case registry.AggAvg:
			expr = "CAST(" + sum + " AS DOUBLE) / count(" + x + ")" + filter()
		case registry.AggMin, registry.AggMax:
			expr = a.Function + "(" + x + ")" + filter()
		case registry.AggLast:
			expr = d.latestOf(x) + filter(x+" IS NOT NULL")
		}
		aggs = append(aggs, fmt.Sprintf("%s AS a%d", expr, j))
	}

	var on []string
	for j, k := range p.keys {
		on = append(on, fmt.Sprintf("e.%s%d = v.%s", colK, j, d.ident(k.joinKey)))
	}
	on = append(on, fmt.Sprintf("e.%s = v.%s", colBucket, colBucket),
		fmt.Sprintf("v.%s BETWEEN e.%s0 AND e.%s", colUS, colLo, colUS))
	return fmt.Sprintf("SELECT e.%s, %s FROM (%s) AS e JOIN (%s) AS v ON %s GROUP BY e.%s",
		colRow, strings.Join(aggs, ", "), entities, events, strings.Join(on, " AND "), colRow)
}

// dialect is what the engines' SQL differs in, for the queries they share
// (windowSQL).
type dialect interface {
	// ident quotes a name.
	ident(name string) string
	// epochUS is a timestamp's microseconds since the epoch, a BIGINT.
	epochUS(ts string) string
	// modFloor is x mod m in [0, m), for a BIGINT x and m > 0.
	modFloor(x string, m int64) string
	// intDiv is x divided by m, for an x that m divides.
	intDiv(x string, m int64) string
	// integers is one row per integer in [lo, hi] (a set-returning
	// expression).
	integers(lo, hi string) string
	// intSum is the sum of an integer column x, with its FILTER clause,
	// wrapped to BIGINT as two's-complement addition does (online sums
	// wrap on overflow).
	intSum(x, filter string) string
	// latestOf is the aggregate of x at its latest event (event time, then
	// source order), without its FILTER.
	latestOf(x string) string
	// fromMicros is the timestamp of x microseconds since the epoch, of
	// the type source relations give event times.
	fromMicros(x string) string
	// naive is a timestamp of source relations as the engine's timestamp
	// without zone, the type of an entity table's generated times.
	naive(x string) string
}

// duckDialect is DuckDB's.
type duckDialect struct{}

func (duckDialect) ident(name string) string { return quoteIdent(name) }
func (duckDialect) epochUS(ts string) string { return "epoch_us(" + ts + ")" }

// modFloor: DuckDB's % (like its //) truncates toward zero, so negative
// times need the correction.
func (duckDialect) modFloor(x string, m int64) string {
	return fmt.Sprintf("((%s %% %d) + %d) %% %d", x, m, m, m)
}
func (duckDialect) intDiv(x string, m int64) string { return fmt.Sprintf("(%s) // %d", x, m) }
func (duckDialect) integers(lo, hi string) string {
	return fmt.Sprintf("unnest(range(%s, %s + 1))", lo, hi)
}

// intSum reduces DuckDB's HUGEINT sum to BIGINT instead of failing the
// cast.
func (duckDialect) intSum(x, filter string) string {
	const two63, two64 = "9223372036854775808::HUGEINT", "18446744073709551616::HUGEINT"
	h := "sum(" + x + ")" + filter
	return fmt.Sprintf("CAST(((%s + %s) %% %s + %s) %% %s - %s AS BIGINT)", h, two63, two64, two64, two64, two63)
}
func (duckDialect) fromMicros(x string) string { return "make_timestamp(" + x + ")" }
func (duckDialect) naive(x string) string      { return x }
func (duckDialect) latestOf(x string) string {
	return fmt.Sprintf("arg_max(%s, struct_pack(t := v.%s, o := v.%s))", x, colUS, colOrd)
}

func colKs(n int) []string {
	out := make([]string, n)
	for j := range out {
		out[j] = fmt.Sprintf("%s%d", colK, j)
	}
	return out
}
