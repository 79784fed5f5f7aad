package server

// Feast-compatible online serving: the translation both Feast surfaces
// share. Feast's HTTP feature server (POST /get-online-features, in
// feast_http.go) and Feast's gRPC ServingService (feast_grpc.go) each
// decode their request into a feastRequest, and feastLookup turns it into
// the online.Request that POST /v1/online-features and
// quiver.serving.v1.Serving build, runs it through the same Serving.get,
// and gives back a feastAnswer from the same online.Response. The
// surfaces then only write that answer in their encoding: every decision
// of what maps onto what is made here, once.
//
// What Feast does and Quiver follows:
//   - Feast sends join keys and the request fields of on-demand views
//     together as entities. Columns that are request fields of a
//     requested on-demand view become the request context (beside any
//     request_context given); all entity columns are entity columns, as
//     long as one another, and the lookup reads the join keys it needs.
//   - The answer lists the requested views' join keys first, each with the
//     request's values, PRESENT and no event time, then the requested
//     features; metadata.feature_names names them in that order.
//   - Statuses are Feast's FieldStatus numbers; a value that is not
//     PRESENT is null (an empty Value).
//
// Where Quiver differs (docs/serving.md, "Feast-compatible serving"):
// features come in request order (Feast groups them by view), join keys in
// the order the requested views name them, and an on-demand value whose
// expression failed is INVALID, a status Feast's own lookups never set.

import (
	"context"
	"fmt"
	"time"

	"github.com/quiverdata/quiver/online"
	feastservingpb "github.com/quiverdata/quiver/proto/feast/serving"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// feastRequest is a Feast lookup, decoded from either surface. Values are
// Go values: int64 (int32 from gRPC), float64 (float32 from gRPC), bool,
// string, []byte, time.Time, []any for lists, nil for null.
type feastRequest struct {
	// Entities are the join keys and, as Feast sends them, the request
	// fields of on-demand views: one column each.
	Entities         map[string][]any
	RequestContext   map[string][]any
	Features         []string
	FeatureService   string
	FullFeatureNames bool
	// ViewMetadata asks for the views the answer reads
	// (include_feature_view_version_metadata).
	ViewMetadata bool
}

// feastAnswer is the answer to a feastRequest: one column per name, the
// join keys first.
type feastAnswer struct {
	Rows  int
	Names []string
	Cols  []feastColumn
	// Views are the views of the requested features, in the order they
	// first appear (only when asked for).
	Views []string
}

// feastColumn is one column of an answer: a join key's values from the
// request, or a looked-up feature.
type feastColumn struct {
	Type registry.ValueType
	Keys []any
	FV   *online.FeatureVector
}

// value returns row i's value: nil unless its status is PRESENT.
func (c *feastColumn) value(i int) any {
	if c.FV == nil {
		return c.Keys[i]
	}
	return c.FV.Value(i)
}

// status returns row i's Feast status.
func (c *feastColumn) status(i int) feastservingpb.FieldStatus {
	if c.FV == nil {
		return feastservingpb.FieldStatus_PRESENT
	}
	return feastStatus(c.FV.Statuses[i])
}

// eventTime returns row i's event time (zero for a join key, or a value
// not found).
func (c *feastColumn) eventTime(i int) time.Time {
	if c.FV == nil {
		return time.Time{}
	}
	return c.FV.EventTimes[i]
}

// feastStatus maps a Quiver status onto Feast's FieldStatus. Feast has no
// status for a failed on-demand expression: it is INVALID ("unset").
func feastStatus(st online.Status) feastservingpb.FieldStatus {
	switch st {
	case online.Present:
		return feastservingpb.FieldStatus_PRESENT
	case online.NullValue:
		return feastservingpb.FieldStatus_NULL_VALUE
	case online.NotFound:
		return feastservingpb.FieldStatus_NOT_FOUND
	case online.OutsideMaxAge:
		return feastservingpb.FieldStatus_OUTSIDE_MAX_AGE
	}
	return feastservingpb.FieldStatus_INVALID
}

// feastLookup answers a Feast lookup through the one lookup path. Its
// errors are core errors (an invalid request wraps
// online.ErrInvalidRequest), which each surface maps as every other
// surface does.
func (s *Serving) feastLookup(ctx context.Context, req *feastRequest) (*feastAnswer, error) {
	snap := s.snapshot()
	qreq := &online.Request{Entities: req.Entities, Features: req.Features, FeatureService: req.FeatureService,
		FullFeatureNames: req.FullFeatureNames, RequestContext: req.RequestContext}
	p, err := s.lookup.Plan(snap.Defs, qreq)
	if err != nil {
		return nil, err
	}
	// Entity columns that are request fields of the requested on-demand
	// views are their request context, as Feast has it.
	copied := false
	for _, d := range p.Demands {
		for _, f := range d.Request {
			col, ok := req.Entities[f.Name]
			if !ok {
				continue
			}
			if _, dup := req.RequestContext[f.Name]; dup {
				return nil, fmt.Errorf("%w: request field %s is given twice, in entities and in request_context", online.ErrInvalidRequest, registry.Clip(f.Name))
			}
			if !copied {
				// The caller's map stays as it was.
				copied = true
				qreq.RequestContext = make(map[string][]any, len(req.RequestContext)+1)
				for k, v := range req.RequestContext {
					qreq.RequestContext[k] = v
				}
			}
			qreq.RequestContext[f.Name] = col
		}
	}
	resp, err := s.get(ctx, snap, qreq)
	if err != nil {
		return nil, err
	}

	ans := &feastAnswer{Rows: resp.Rows}
	seen := map[string]bool{}
	for _, v := range p.Views {
		for _, k := range v.Keys {
			if seen[k.Name] {
				continue
			}
			seen[k.Name] = true
			col, ok := req.Entities[k.Name]
			if !ok {
				continue // the lookup has refused a missing join key; never here
			}
			keys := make([]any, len(col))
			for i, x := range col {
				if keys[i], err = value.Canon(k.Type, x); err != nil {
					return nil, fmt.Errorf("%w: join key %s, row %d: %v", online.ErrInvalidRequest, k.Name, i, err)
				}
			}
			ans.Names = append(ans.Names, k.Name)
			ans.Cols = append(ans.Cols, feastColumn{Type: k.Type, Keys: keys})
		}
	}
	for i := range resp.Features {
		fv := &resp.Features[i]
		ans.Names = append(ans.Names, fv.Name)
		ans.Cols = append(ans.Cols, feastColumn{Type: fv.Type, FV: fv})
	}
	if req.ViewMetadata {
		views := map[string]bool{}
		for _, c := range p.Columns[:p.Requested] {
			if !views[c.View] {
				views[c.View] = true
				ans.Views = append(ans.Views, c.View)
			}
		}
	}
	return ans, nil
}

// feastNoTime is how Feast writes the event time of a value without one
// (a join key, a value not found): the Unix epoch.
const feastNoTime = "1970-01-01T00:00:00Z"

// feastTimestamp writes an event time as Feast's feature server does:
// RFC 3339 in UTC with a Z, and as many fractional digits as the time
// needs: none, 3, 6 or 9. The zero time is the epoch.
func feastTimestamp(t time.Time) string {
	if t.IsZero() {
		return feastNoTime
	}
	t = t.UTC()
	base := t.Format("2006-01-02T15:04:05")
	switch ns := t.Nanosecond(); {
	case ns == 0:
		return base + "Z"
	case ns%1_000_000 == 0:
		return fmt.Sprintf("%s.%03dZ", base, ns/1_000_000)
	case ns%1_000 == 0:
		return fmt.Sprintf("%s.%06dZ", base, ns/1_000)
	default:
		return fmt.Sprintf("%s.%09dZ", base, ns)
	}
}
