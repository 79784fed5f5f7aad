package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/wire"
	"google.golang.org/grpc/codes"
)

// OnlineFeaturesRequest is the JSON body of POST /v1/online-features.
type OnlineFeaturesRequest struct {
	Entities         map[string][]any `json:"entities"`
	Features         []string         `json:"features"`
	FeatureService   string           `json:"feature_service"`
	FullFeatureNames bool             `json:"full_feature_names"`
	// RequestContext holds the request fields of on-demand views: numbers,
	// strings, booleans, RFC 3339 timestamps or lists of them.
	RequestContext map[string][]any `json:"request_context"`
}

// OnlineFeaturesResponse is its JSON answer.
type OnlineFeaturesResponse struct {
	Rows            int                 `json:"rows"`
	RegistryVersion int64               `json:"registry_version"`
	Features        []FeatureVectorJSON `json:"features"`
}

// FeatureVectorJSON is one feature's column: values (null where the status
// is not PRESENT), statuses and event times (RFC 3339, null when not found).
type FeatureVectorJSON struct {
	Name            string          `json:"name"`
	Type            string          `json:"type"`
	Values          []any           `json:"values"`
	Statuses        []online.Status `json:"statuses"`
	EventTimestamps []*time.Time    `json:"event_timestamps"`
}

// readJSONBody reads a whole request body and refuses duplicate keys
// (encoding/json would keep the last): every JSON body is read this way.
func readJSONBody(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	if err := checkJSONKeys(body); err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	return body, nil
}

// DecodeOnlineFeaturesRequest reads a request body: unknown fields are
// errors; entity values are strings or integers.
func DecodeOnlineFeaturesRequest(r io.Reader) (*OnlineFeaturesRequest, error) {
	body, err := readJSONBody(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", online.ErrInvalidRequest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req OnlineFeaturesRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: request body: %w", online.ErrInvalidRequest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: request body holds more than one JSON value", online.ErrInvalidRequest)
	}
	for name, col := range req.Entities {
		for i, v := range col {
			switch x := v.(type) {
			case json.Number:
				n, err := strconv.ParseInt(x.String(), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%w: entities.%s[%d]: %s is not an integer", online.ErrInvalidRequest, name, i, x)
				}
				col[i] = n
			case string:
			default:
				return nil, fmt.Errorf("%w: entities.%s[%d]: %v is not a string or an integer", online.ErrInvalidRequest, name, i, v)
			}
		}
	}
	for name, col := range req.RequestContext {
		for i, v := range col {
			x, err := jsonValue(v)
			if err != nil {
				return nil, fmt.Errorf("%w: request_context.%s[%d]: %v", online.ErrInvalidRequest, name, i, err)
			}
			col[i] = x
		}
	}
	return &req, nil
}

// jsonValue turns a decoded JSON value into what on-demand request fields
// take: integers as int64, other numbers as float64, lists element by
// element; objects are errors.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(x.String(), 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a number", x)
		}
		return f, nil
	case []any:
		for i, e := range x {
			y, err := jsonValue(e)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			x[i] = y
		}
		return x, nil
	case map[string]any:
		return nil, errors.New("an object is not a request field value")
	}
	return v, nil
}

// readBody reads a request's body, at most MaxRequestBytes of it. When it
// cannot, it answers and returns false: 413 for a body over the limit,
// 408 for one the client did not send within the server's read timeout,
// 400 for one cut short. The read error itself names the connection's
// addresses, so it is not shown.
func (s *Serving) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.limits.MaxRequestBytes)))
	if err == nil {
		return body, true
	}
	var tooBig *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, fmt.Sprintf("request body over %d bytes", tooBig.Limit))
	case errors.As(err, &ne) && ne.Timeout():
		writeError(w, http.StatusRequestTimeout, codes.DeadlineExceeded, "request body not received within the server's read timeout")
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, "request body shorter than its Content-Length")
	default:
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, "request body could not be read")
	}
	return nil, false
}

func (s *Serving) handleOnlineFeatures(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeOnlineFeaturesRequest(bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		return
	}
	snap := s.snapshot()
	resp, err := s.get(r.Context(), snap, &online.Request{Entities: req.Entities, Features: req.Features,
		FeatureService: req.FeatureService, FullFeatureNames: req.FullFeatureNames, RequestContext: req.RequestContext})
	if err != nil {
		writeCoreError(w, err)
		return
	}
	out := OnlineFeaturesResponse{Rows: resp.Rows, RegistryVersion: snap.Version, Features: make([]FeatureVectorJSON, len(resp.Features))}
	for i := range resp.Features {
		fv := &resp.Features[i]
		j := FeatureVectorJSON{Name: fv.Name, Type: fv.Type.String(), Values: make([]any, resp.Rows),
			Statuses: fv.Statuses, EventTimestamps: make([]*time.Time, len(fv.EventTimes))}
		for r := range resp.Rows {
			j.Values[r] = jsonSafe(fv.Value(r))
			if t := fv.EventTimes[r]; !t.IsZero() && jsonTime(t) {
				j.EventTimestamps[r] = &fv.EventTimes[r]
			}
		}
		out.Features[i] = j
	}
	writeJSON(w, http.StatusOK, out)
}

// PushRequest is the JSON body of POST /v1/push: rows of a push source,
// each a JSON object holding every field of the source's schema, as a
// Kafka message of the source would (timestamps as RFC 3339 strings or
// epoch milliseconds, bytes as base64, lists as arrays, null for null).
type PushRequest struct {
	Source string            `json:"source"`
	Rows   []json.RawMessage `json:"rows"`
}

// PushResponse is its JSON answer: the number of rows applied.
type PushResponse struct {
	Rows int `json:"rows"`
}

// DecodePushRequest reads a push body: unknown fields are errors, the
// source is required, and the rows are kept as raw JSON for the source's
// decoder to check.
func DecodePushRequest(r io.Reader) (*PushRequest, error) {
	body, err := readJSONBody(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", stream.ErrInvalidPush, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req PushRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: request body: %w", stream.ErrInvalidPush, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: request body holds more than one JSON value", stream.ErrInvalidPush)
	}
	if req.Source == "" {
		return nil, fmt.Errorf("%w: source is required", stream.ErrInvalidPush)
	}
	return &req, nil
}

func (s *Serving) handlePush(w http.ResponseWriter, r *http.Request) {
	if s.pusher == nil {
		writeCoreError(w, errNoPusher)
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodePushRequest(bytes.NewReader(body))
	if err == nil {
		err = s.checkPushRows(len(req.Rows))
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		return
	}
	rows := make([][]byte, len(req.Rows))
	for i, row := range req.Rows {
		rows[i] = row
	}
	n, err := s.push(r.Context(), req.Source, func(ctx context.Context) (int, error) {
		return s.pusher.PushJSON(ctx, req.Source, rows)
	})
	if err != nil {
		writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PushResponse{Rows: n})
}

// jsonTime reports whether t can be written in JSON: RFC 3339 has
// four-digit years only.
func jsonTime(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// jsonSafe replaces the floats JSON cannot carry (NaN, ±Inf) by strings,
// and the times it cannot carry (years before 0 or after 9999, which old
// rows may hold) by null: one such value never fails the other values of
// the answer.
func jsonSafe(v any) any {
	f := func(x float64) any {
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		}
		return x
	}
	switch x := v.(type) {
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return f(float64(x))
		}
	case float64:
		return f(x)
	case []float32:
		for _, e := range x {
			if math.IsNaN(float64(e)) || math.IsInf(float64(e), 0) {
				out := make([]any, len(x))
				for i, e := range x {
					out[i] = f(float64(e))
				}
				return out
			}
		}
	case []float64:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = f(e)
		}
		return out
	case time.Time:
		if !jsonTime(x) {
			return nil
		}
	case []time.Time:
		out := make([]any, len(x))
		for i, e := range x {
			if jsonTime(e) {
				out[i] = e
			}
		}
		return out
	}
	return v
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		buf.Reset()
		msg, _ := json.Marshal(wire.ErrorBody{Error: "encode response: " + err.Error(), Code: codes.Internal.String()}) // two strings always encode
		buf.Write(msg)
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes()) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, status int, code codes.Code, msg string) {
	writeJSON(w, status, wire.ErrorBody{Error: msg, Code: code.String()})
}

// writeCoreError answers a core error with its one mapping (errors.go).
func writeCoreError(w http.ResponseWriter, err error) {
	code := errorCode(err)
	writeError(w, wire.HTTPStatus(code), code, clientMessage(err))
}

// checkJSONKeys refuses a JSON document in which an object holds a key
// twice (encoding/json would keep the last one silently), naming where;
// the push decoder of a source's rows refuses them the same way. Syntax
// errors are left to the decoder that follows.
func checkJSONKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := checkJSONValue(dec, "", 0); err != nil && !errors.Is(err, errJSONSyntax) {
		return err
	}
	return nil
}

var errJSONSyntax = errors.New("not valid JSON")

// maxJSONDepth is encoding/json's own nesting bound: deeper documents
// fail to decode anyway.
const maxJSONDepth = 10000

// checkJSONValue reads one value at path, checking its objects' keys.
func checkJSONValue(dec *json.Decoder, path string, depth int) error {
	if depth > maxJSONDepth {
		return errJSONSyntax
	}
	tok, err := dec.Token()
	if err != nil {
		return errJSONSyntax
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return errJSONSyntax
			}
			key, _ := kt.(string)
			at := key
			if path != "" {
				at = path + "." + key
			}
			if seen[key] {
				return fmt.Errorf("key %s appears twice", strconv.Quote(at))
			}
			seen[key] = true
			if err := checkJSONValue(dec, at, depth+1); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := checkJSONValue(dec, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errJSONSyntax
	}
	return nil
}

// authHTTP answers 401 to a request without the bearer token.
func (s *Server) authHTTP(w http.ResponseWriter, r *http.Request) bool {
	if s.authorized(r.Header.Get("Authorization")) {
		return true
	}
	writeError(w, http.StatusUnauthorized, codes.Unauthenticated, "missing or wrong bearer token (send the header Authorization: Bearer TOKEN)")
	return false
}

// route is one HTTP path: the methods it takes and its handler; open
// routes (health checks) need no token.
type route struct {
	methods []string
	handler http.Handler
	open    bool
}

// routes is the HTTP surface. Every path but the health checks needs the
// token, unknown ones included; an unknown path is a JSON 404 and a
// method a route does not take a JSON 405 with Allow. Requests run under
// RequestTimeout.
func (s *Server) routes() http.Handler {
	get := []string{http.MethodGet, http.MethodHead}
	post := []string{http.MethodPost}
	table := map[string]*route{
		"/v1/online-features": {methods: post, handler: http.HandlerFunc(s.serving.handleOnlineFeatures)},
		"/v1/push":            {methods: post, handler: http.HandlerFunc(s.serving.handlePush)},
		// Feast's feature server (feast_http.go).
		"/get-online-features": {methods: post, handler: http.HandlerFunc(s.serving.handleFeastOnlineFeatures)},
		"/push":                {methods: post, handler: http.HandlerFunc(s.serving.handleFeastPush)},
		"/healthz": {methods: get, open: true, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		})},
		"/readyz": {methods: get, open: true, handler: http.HandlerFunc(s.handleReady)},
	}
	if m := s.cfg.Metrics; m != nil {
		table["/metrics"] = &route{methods: get, handler: m.Handler()}
	}
	paths := make([]string, 0, len(table))
	for p := range table {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := table[r.URL.Path]
		if (!ok || !rt.open) && !s.authHTTP(w, r) {
			return
		}
		if !ok {
			writeError(w, http.StatusNotFound, codes.NotFound, fmt.Sprintf("no such path %s (paths: %s)", cut(r.URL.Path, 100), strings.Join(paths, ", ")))
			return
		}
		if !slices.Contains(rt.methods, r.Method) {
			w.Header().Set("Allow", strings.Join(rt.methods, ", "))
			writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented, fmt.Sprintf("%s takes %s, not %s", r.URL.Path, strings.Join(rt.methods, " or "), cut(r.Method, 20)))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		rt.handler.ServeHTTP(w, r.WithContext(ctx))
	})
	if m := s.cfg.Metrics; m != nil {
		h = m.observeHTTP(func(r *http.Request) string {
			if _, ok := table[r.URL.Path]; ok {
				return r.URL.Path
			}
			return "other"
		}, h)
	}
	return h
}

// cut shortens a client's value for a message.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
