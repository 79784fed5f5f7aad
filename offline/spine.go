package offline

import (
	"fmt"
	"strings"
	"time"

	"github.com/quiverdata/quiver/plan"
)

// A spine is an entity table generated from a feature view, for a team
// that has no label table yet: the training set's rows are the view's
// events, or every entity of the view at a cadence.

// Spine describes a generated entity table (EntitiesFromSpine).
type Spine struct {
	// View is the feature view whose join keys and rows make the entity
	// rows; its join keys are the table's key columns, under their names.
	View string
	// Start and End bound the rows' times, both included.
	Start, End time.Time
	// Every, when set, makes one row per entity of View (a join-key tuple
	// with a row in [Start, End]) at each of Start, Start+Every, ... up to
	// End, in that order, then by key. Unset, the rows are View's own
	// rows with an event time in [Start, End], by event time, then created
	// time and source order. Rows with a null key are left out.
	Every time.Duration
}

// MaxSpineInstants bounds the instants of a spine with a cadence.
const MaxSpineInstants = 1_000_000

// EntitiesFromSpine generates the entity table from a feature view
// (Spine): its join keys and event_timestamp (a timestamp without zone).
func EntitiesFromSpine(s Spine) Entities { return Entities{spine: &s} }

// check refuses a spine that names no view, an empty or reversed range,
// or a cadence that is not positive or makes too many instants.
func (s *Spine) check() error {
	switch {
	case s.View == "":
		return invalidf("spine: name the feature view whose rows make the entity rows")
	case s.Start.IsZero() || s.End.IsZero():
		return invalidf("spine %s: give both a start and an end time", s.View)
	case s.End.Before(s.Start):
		return invalidf("spine %s: end %s is before start %s", s.View, s.End.Format(time.RFC3339Nano), s.Start.Format(time.RFC3339Nano))
	case s.Every < 0:
		return invalidf("spine %s: every %s is negative", s.View, s.Every)
	case s.Every > 0 && s.Every < time.Microsecond:
		return invalidf("spine %s: every %s is under a microsecond", s.View, s.Every)
	case s.Every > 0 && s.instants() > MaxSpineInstants:
		return invalidf("spine %s: every %s from %s to %s makes %d instants, over %d; take a longer cadence or a shorter range",
			s.View, s.Every, s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339), s.instants(), MaxSpineInstants)
	}
	return nil
}

// instants is the number of instants of a spine with a cadence.
func (s *Spine) instants() int64 {
	return int64(s.End.Sub(s.Start)/s.Every) + 1
}

// spinePlan is a spine with the plan of its view, for the engines.
type spinePlan struct {
	Spine
	view *viewPlan
}

// planSpine resolves the spine's view: its join keys and its source.
func (e *Engine) planSpine(req *Request) error {
	s := req.Entities.spine
	if s == nil {
		return nil
	}
	if err := s.check(); err != nil {
		return err
	}
	if req.Defs.FeatureView(s.View) == nil {
		return invalidf("spine: no feature view %q", s.View)
	}
	if req.TimestampColumn != "" && req.TimestampColumn != DefaultTimestampColumn {
		return invalidf("spine %s: a generated entity table's time is %s; drop the timestamp column %q", s.View, DefaultTimestampColumn, req.TimestampColumn)
	}
	p, err := e.plans.Get(req.Defs, plan.Request{Features: []string{s.View + ":*"}})
	if err != nil {
		return fmt.Errorf("%w: spine: %w", ErrInvalidRequest, err)
	}
	res, err := newResolved(p, nil)
	if err != nil {
		return err
	}
	vp := res.plans[0]
	vp.asOf = req.AsOf
	req.Entities.spinePlan = &spinePlan{Spine: *s, view: vp}
	return nil
}

// spineSQL is the query of the spine's entity rows over rel, the view's
// source relation (join keys under their names, colTS, and the ordering
// of rule 2 as order), in dialect d: the keys, event_timestamp and colRow.
func spineSQL(d dialect, sp *spinePlan, rel, order string) string {
	var keys, notNull []string
	for _, k := range sp.view.keys {
		keys = append(keys, d.ident(k.joinKey))
		notNull = append(notNull, d.ident(k.joinKey)+" IS NOT NULL")
	}
	in := fmt.Sprintf("%s BETWEEN %s AND %s", colTS, d.fromMicros(fmt.Sprint(sp.Start.UnixMicro())), d.fromMicros(fmt.Sprint(sp.End.UnixMicro())))
	where := strings.Join(append(notNull, in), " AND ")
	ts := d.ident(DefaultTimestampColumn)
	if sp.Every == 0 {
		return fmt.Sprintf("SELECT %s, %s AS %s, row_number() OVER (ORDER BY %s, %s) - 1 AS %s FROM (%s) WHERE %s",
			strings.Join(keys, ", "), d.naive(colTS), ts, colTS, order, colRow, rel, where)
	}
	at := d.fromMicros(fmt.Sprintf("%d + i * %d", sp.Start.UnixMicro(), sp.Every.Microseconds()))
	instants := fmt.Sprintf("SELECT %s AS %s FROM (SELECT %s AS i)", at, colTS, d.integers("0", fmt.Sprint(sp.instants()-1)))
	kk := prefixed("k.", keys)
	return fmt.Sprintf("SELECT %s, %s AS %s, row_number() OVER (ORDER BY t.%s, %s) - 1 AS %s FROM (SELECT DISTINCT %s FROM (%s) WHERE %s) AS k CROSS JOIN (%s) AS t",
		strings.Join(kk, ", "), d.naive("t."+colTS), ts, colTS, strings.Join(kk, ", "), colRow,
		strings.Join(keys, ", "), rel, where, instants)
}

func prefixed(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}
