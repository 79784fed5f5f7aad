package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
	"github.com/quiverdata/quiver/wire"
)

// Feast's HTTP feature server, on Quiver's HTTP listener:
// POST /get-online-features and POST /push take and answer Feast's JSON,
// through feastLookup (feast.go) and the push path of POST /v1/push.

// FeastOnlineFeaturesRequest is the JSON body of POST /get-online-features,
// as Feast's feature server takes it. Entities holds the join keys and
// the request fields of on-demand views, one column each (numbers,
// strings, booleans, RFC 3339 timestamps or lists of them); RequestContext
// may hold request fields as well. Fields Feast knows but Quiver does not
// use are accepted; unknown fields are errors.
type FeastOnlineFeaturesRequest struct {
	Entities       map[string][]any `json:"entities"`
	Features       []string         `json:"features"`
	FeatureService string           `json:"feature_service"`
	// FullFeatureNames names features view__feature instead of feature.
	FullFeatureNames bool             `json:"full_feature_names"`
	RequestContext   map[string][]any `json:"request_context"`
	// IncludeFeatureViewVersionMetadata lists the views of the requested
	// features in metadata.feature_view_metadata (names only: Quiver
	// versions the registry, not each view).
	IncludeFeatureViewVersionMetadata bool `json:"include_feature_view_version_metadata"`
}

// FeastOnlineFeaturesResponse is its answer: metadata.feature_names names
// the join keys, then the requested features, and results holds one
// vector per name, in that order.
type FeastOnlineFeaturesResponse struct {
	Metadata FeastResponseMetadata `json:"metadata"`
	Results  []FeastFeatureVector  `json:"results"`
}

// FeastResponseMetadata is the metadata of an answer.
type FeastResponseMetadata struct {
	FeatureNames        []string                   `json:"feature_names"`
	FeatureViewMetadata []FeastFeatureViewMetadata `json:"feature_view_metadata,omitempty"`
}

// FeastFeatureViewMetadata names a view an answer reads.
type FeastFeatureViewMetadata struct {
	Name    string `json:"name"`
	Version int32  `json:"version,omitempty"`
}

// FeastFeatureVector is one column of an answer, one entry per entity row:
// the value (null unless PRESENT; bytes in base64, timestamps in seconds
// since the epoch, NaN and infinities as strings), Feast's status name and
// the event time (RFC 3339 UTC; 1970-01-01T00:00:00Z when there is none).
// Like Feast, an answer of no rows has no event_timestamps.
type FeastFeatureVector struct {
	Values          []any    `json:"values"`
	Statuses        []string `json:"statuses"`
	EventTimestamps []string `json:"event_timestamps,omitempty"`
}

// DecodeFeastOnlineFeaturesRequest reads a POST /get-online-features body.
// Its errors wrap online.ErrInvalidRequest.
func DecodeFeastOnlineFeaturesRequest(r io.Reader) (*FeastOnlineFeaturesRequest, error) {
	body, err := readJSONBody(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", online.ErrInvalidRequest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req FeastOnlineFeaturesRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: request body: %w", online.ErrInvalidRequest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: request body holds more than one JSON value", online.ErrInvalidRequest)
	}
	for what, cols := range map[string]map[string][]any{"entities": req.Entities, "request_context": req.RequestContext} {
		for name, col := range cols {
			for i, v := range col {
				x, err := jsonValue(v)
				if err != nil {
					return nil, fmt.Errorf("%w: %s.%s[%d]: %v", online.ErrInvalidRequest, what, registry.Clip(name), i, err)
				}
				col[i] = x
			}
		}
	}
	return &req, nil
}

func (s *Serving) handleFeastOnlineFeatures(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeFeastOnlineFeaturesRequest(bytes.NewReader(body))
	if err != nil {
		writeFeastError(w, err)
		return
	}
	ans, err := s.feastLookup(r.Context(), &feastRequest{Entities: req.Entities, RequestContext: req.RequestContext,
		Features: req.Features, FeatureService: req.FeatureService, FullFeatureNames: req.FullFeatureNames,
		ViewMetadata: req.IncludeFeatureViewVersionMetadata})
	if err != nil {
		writeFeastError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, feastJSON(ans))
}

// feastJSON writes an answer in Feast's JSON.
func feastJSON(a *feastAnswer) *FeastOnlineFeaturesResponse {
	out := &FeastOnlineFeaturesResponse{Metadata: FeastResponseMetadata{FeatureNames: append([]string{}, a.Names...)},
		Results: make([]FeastFeatureVector, len(a.Cols))}
	for _, v := range a.Views {
		out.Metadata.FeatureViewMetadata = append(out.Metadata.FeatureViewMetadata, FeastFeatureViewMetadata{Name: v})
	}
	for j := range a.Cols {
		c := &a.Cols[j]
		fv := FeastFeatureVector{Values: make([]any, a.Rows), Statuses: make([]string, a.Rows)}
		if a.Rows > 0 {
			fv.EventTimestamps = make([]string, a.Rows)
		}
		for i := range a.Rows {
			fv.Values[i] = feastJSONValue(c.Type, c.value(i))
			fv.Statuses[i] = c.status(i).String()
			fv.EventTimestamps[i] = feastTimestamp(c.eventTime(i))
		}
		out.Results[j] = fv
	}
	return out
}

// feastJSONValue is a value of type t as Feast's feature server writes it:
// timestamps as whole seconds since the epoch (Feast's unix_timestamp),
// bytes in base64 (encoding/json's []byte), NaN and infinities as the
// strings protobuf's JSON uses, the rest as JSON numbers, strings and
// booleans.
func feastJSONValue(t registry.ValueType, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		return x.Unix()
	case []time.Time:
		out := make([]int64, len(x))
		for i, e := range x {
			out[i] = e.Unix()
		}
		return out
	case []any: // a list not in its typed form: make it so
		if c, err := value.Canon(t, x); err == nil {
			return feastJSONValue(t, c)
		}
	}
	return jsonSafe(v)
}

// FeastPushRequest is the JSON body of POST /push, as Feast's feature
// server takes it: rows of a push source as columns (df: column name →
// values, one per row), and where they go. Quiver applies every push
// online and to the offline log together, so To is "online" (Feast's
// default) or "online_and_offline"; "offline" is refused.
// AllowRegistryCache and TransformOnWrite are accepted and have no effect.
type FeastPushRequest struct {
	PushSourceName     string                       `json:"push_source_name"`
	DF                 map[string][]json.RawMessage `json:"df"`
	To                 string                       `json:"to"`
	AllowRegistryCache *bool                        `json:"allow_registry_cache"`
	TransformOnWrite   *bool                        `json:"transform_on_write"`
}

// Feast's push destinations.
const (
	feastToOnline           = "online"
	feastToOffline          = "offline"
	feastToOnlineAndOffline = "online_and_offline"
)

// DecodeFeastPushRequest reads a POST /push body: the source is required,
// to is one Quiver honours, and the columns are as long as one another.
// Its errors wrap stream.ErrInvalidPush.
func DecodeFeastPushRequest(r io.Reader) (*FeastPushRequest, error) {
	body, err := readJSONBody(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", stream.ErrInvalidPush, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req FeastPushRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: request body: %w", stream.ErrInvalidPush, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: request body holds more than one JSON value", stream.ErrInvalidPush)
	}
	switch req.To {
	case "", feastToOnline, feastToOnlineAndOffline:
	case feastToOffline:
		return nil, fmt.Errorf("%w: to %q is not supported: Quiver applies a push online and to the offline log together (send %q or %q)",
			stream.ErrInvalidPush, req.To, feastToOnline, feastToOnlineAndOffline)
	default:
		return nil, fmt.Errorf("%w: to %s is not a push destination (send %q or %q)",
			stream.ErrInvalidPush, strconv.Quote(registry.Clip(req.To)), feastToOnline, feastToOnlineAndOffline)
	}
	if req.PushSourceName == "" {
		return nil, fmt.Errorf("%w: push_source_name is required", stream.ErrInvalidPush)
	}
	first := ""
	for _, name := range sortedKeys(req.DF) {
		if first == "" {
			first = name
		} else if n, m := len(req.DF[name]), len(req.DF[first]); n != m {
			return nil, fmt.Errorf("%w: df column %s has %d values, column %s has %d: all columns have the same length",
				stream.ErrInvalidPush, registry.Clip(name), n, registry.Clip(first), m)
		}
	}
	return &req, nil
}

// rows returns the push's rows as the JSON objects POST /v1/push takes
// (one per row, a member per df column), timestamps in the forms Feast's
// clients write (Python's str and isoformat of a datetime: a space or a T
// between date and time, with or without an offset; naive means UTC)
// rewritten in RFC 3339. fields is the source's schema.
func (req *FeastPushRequest) rows(fields []*registry.Field) [][]byte {
	times := map[string]bool{}
	for _, f := range fields {
		if f.Type.Elem == registry.Timestamp {
			times[f.Name] = true
		}
	}
	names := sortedKeys(req.DF)
	n := 0
	if len(names) > 0 {
		n = len(req.DF[names[0]])
	}
	keys := make([][]byte, len(names))
	for j, name := range names {
		keys[j], _ = json.Marshal(name) // a string always encodes
	}
	rows := make([][]byte, n)
	for i := range rows {
		b := []byte{'{'}
		for j, name := range names {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, keys[j]...)
			b = append(b, ':')
			v := req.DF[name][i]
			if times[name] {
				v = feastTimes(v)
			}
			b = append(b, v...)
		}
		rows[i] = append(b, '}')
	}
	return rows
}

// feastTimes rewrites a timestamp value (or a list of them) written as a
// Python datetime in RFC 3339; other values are left for the source's
// decoder to judge.
func feastTimes(v json.RawMessage) json.RawMessage {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) > 0 && v[0] == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return v
		}
		if t, ok := parseFeastTime(s); ok {
			out, _ := json.Marshal(t.Format(time.RFC3339Nano)) // a string always encodes
			return out
		}
	case len(v) > 0 && v[0] == '[':
		var elems []json.RawMessage
		if json.Unmarshal(v, &elems) != nil {
			return v
		}
		for i, e := range elems {
			elems[i] = feastTimes(e)
		}
		if out, err := json.Marshal(elems); err == nil {
			return out
		}
	}
	return v
}

// feastTimeLayouts are the forms of a Python datetime's str and isoformat
// (fractional seconds are taken after the seconds without being named).
var feastTimeLayouts = []string{
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02",
}

// parseFeastTime reads a time in one of feastTimeLayouts; a time without
// an offset is UTC.
func parseFeastTime(s string) (time.Time, bool) {
	for _, layout := range feastTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (s *Serving) handleFeastPush(w http.ResponseWriter, r *http.Request) {
	if s.pusher == nil {
		writeFeastError(w, errNoPusher)
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeFeastPushRequest(bytes.NewReader(body))
	if err != nil {
		writeFeastError(w, err)
		return
	}
	source := req.PushSourceName
	// The source's schema says which columns are timestamps. A source
	// without one takes no pushes, and the push itself says why.
	var fields []*registry.Field
	if d, err := s.pusher.Decoder(source); err == nil {
		fields = d.Fields()
	}
	rows := req.rows(fields)
	if err := s.checkPushRows(len(rows)); err != nil {
		writeFeastError(w, err)
		return
	}
	if _, err := s.push(r.Context(), source, func(ctx context.Context) (int, error) {
		return s.pusher.PushJSON(ctx, source, rows)
	}); err != nil {
		writeFeastError(w, err)
		return
	}
	// Feast's feature server answers a push with an empty 200.
	w.WriteHeader(http.StatusOK)
}

// FeastErrorDetail is what Feast's feature server says of a failed
// request, and what Feast's Python client turns back into an exception
// (a feast.errors.FeastError here, whose message is Message). The answer's
// body is this object encoded as JSON inside a JSON string, as Feast's
// server writes it.
type FeastErrorDetail struct {
	Module  string `json:"module"`
	Class   string `json:"class"`
	Message string `json:"message"`
}

// writeFeastError answers a core error with the one mapping of errors.go
// (invalid requests 400, an unreachable store 503, a server without
// pushes 501) and a body in Feast's form.
func writeFeastError(w http.ResponseWriter, err error) {
	code := errorCode(err)
	detail, _ := json.Marshal(FeastErrorDetail{Module: "feast.errors", Class: "FeastError", Message: clientMessage(err)}) // strings always encode
	writeJSON(w, wire.HTTPStatus(code), string(detail))
}
