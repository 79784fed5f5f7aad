package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quiverdata/quiver/internal/testutil/redistest"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	feastservingpb "github.com/quiverdata/quiver/proto/feast/serving"
	feasttypespb "github.com/quiverdata/quiver/proto/feast/types"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
)

// feastJSONAnswer is Feast's feature-server answer, decoded strictly (no
// member beyond Feast's) with each value kept as its JSON text.
type feastJSONAnswer struct {
	Metadata struct {
		FeatureNames        []string `json:"feature_names"`
		FeatureViewMetadata []struct {
			Name    string `json:"name"`
			Version int32  `json:"version"`
		} `json:"feature_view_metadata"`
	} `json:"metadata"`
	Results []struct {
		Values          []json.RawMessage `json:"values"`
		Statuses        []string          `json:"statuses"`
		EventTimestamps []string          `json:"event_timestamps"`
	} `json:"results"`
}

// post sends a JSON body and returns the status and the body.
func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// feastDetail reads a Feast error body: a JSON string holding the object
// Feast's Python client turns back into an exception.
func feastDetail(t *testing.T, body []byte) FeastErrorDetail {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(body, &s), "the error body is a JSON string: %s", body)
	var d FeastErrorDetail
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&d), "the error detail: %s", s)
	require.Equal(t, "feast.errors", d.Module)
	require.Equal(t, "FeastError", d.Class)
	return d
}

// quiverStatusInFeast is Feast's FieldStatus of each Quiver status, as
// this test reads the contract.
var quiverStatusInFeast = map[servingv1.Status]feastservingpb.FieldStatus{
	servingv1.Status_PRESENT:          feastservingpb.FieldStatus_PRESENT,
	servingv1.Status_NULL_VALUE:       feastservingpb.FieldStatus_NULL_VALUE,
	servingv1.Status_NOT_FOUND:        feastservingpb.FieldStatus_NOT_FOUND,
	servingv1.Status_OUTSIDE_MAX_AGE:  feastservingpb.FieldStatus_OUTSIDE_MAX_AGE,
	servingv1.Status_EVALUATION_ERROR: feastservingpb.FieldStatus_INVALID,
}

// expectFeast is the Feast answer that Quiver's own answer q means: the
// join keys first (PRESENT, at the epoch), then every feature with its
// value in the Feast Value member of its type, null unless PRESENT.
func expectFeast(t *testing.T, keys map[string][]int64, keyOrder []string, q *servingv1.GetOnlineFeaturesResponse) *feastservingpb.GetOnlineFeaturesResponse {
	t.Helper()
	rows := int(q.Rows)
	out := &feastservingpb.GetOnlineFeaturesResponse{Metadata: &feastservingpb.GetOnlineFeaturesResponseMetadata{FeatureNames: &feastservingpb.FeatureList{}}}
	for _, k := range keyOrder {
		out.Metadata.FeatureNames.Val = append(out.Metadata.FeatureNames.Val, k)
		fv := &feastservingpb.GetOnlineFeaturesResponse_FeatureVector{}
		for _, id := range keys[k] {
			fv.Values = append(fv.Values, &feasttypespb.Value{Val: &feasttypespb.Value_Int64Val{Int64Val: id}})
			fv.Statuses = append(fv.Statuses, feastservingpb.FieldStatus_PRESENT)
			fv.EventTimestamps = append(fv.EventTimestamps, &timestamppb.Timestamp{})
		}
		out.Results = append(out.Results, fv)
	}
	for _, f := range q.Features {
		out.Metadata.FeatureNames.Val = append(out.Metadata.FeatureNames.Val, f.Name)
		fv := &feastservingpb.GetOnlineFeaturesResponse_FeatureVector{}
		for i := range rows {
			st, ok := quiverStatusInFeast[f.Statuses[i]]
			require.True(t, ok, "status %v", f.Statuses[i])
			fv.Statuses = append(fv.Statuses, st)
			ts := &timestamppb.Timestamp{}
			if us := f.EventTimestamps[i]; us != 0 {
				ts = timestamppb.New(time.UnixMicro(us))
			}
			fv.EventTimestamps = append(fv.EventTimestamps, ts)
			v := &feasttypespb.Value{}
			if f.Statuses[i] == servingv1.Status_PRESENT {
				qv := f.Values
				switch f.Type {
				case "float32":
					v.Val = &feasttypespb.Value_FloatVal{FloatVal: qv.FloatValues[i]}
				case "float64":
					v.Val = &feasttypespb.Value_DoubleVal{DoubleVal: qv.DoubleValues[i]}
				case "int64":
					v.Val = &feasttypespb.Value_Int64Val{Int64Val: qv.Int64Values[i]}
				case "bool":
					v.Val = &feasttypespb.Value_BoolVal{BoolVal: qv.BoolValues[i]}
				case "timestamp":
					v.Val = &feasttypespb.Value_UnixTimestampVal{UnixTimestampVal: time.UnixMicro(qv.TimestampValues[i]).Unix()}
				case "list<float32>":
					v.Val = &feasttypespb.Value_FloatListVal{FloatListVal: &feasttypespb.FloatList{Val: qv.ListValues[i].FloatValues}}
				default:
					t.Fatalf("no Feast value for type %s in this test", f.Type)
				}
			}
			fv.Values = append(fv.Values, v)
		}
		out.Results = append(out.Results, fv)
	}
	return out
}

// jsonOfFeast is how Feast's feature server writes a Value in JSON.
func jsonOfFeast(t *testing.T, v *feasttypespb.Value) string {
	t.Helper()
	var x any
	switch v := v.GetVal().(type) {
	case nil:
	case *feasttypespb.Value_Int64Val:
		x = v.Int64Val
	case *feasttypespb.Value_FloatVal:
		x = v.FloatVal
	case *feasttypespb.Value_DoubleVal:
		x = v.DoubleVal
	case *feasttypespb.Value_BoolVal:
		x = v.BoolVal
	case *feasttypespb.Value_UnixTimestampVal:
		x = v.UnixTimestampVal
	case *feasttypespb.Value_FloatListVal:
		x = v.FloatListVal.Val
	default:
		t.Fatalf("no JSON for %T in this test", v)
	}
	b, err := json.Marshal(x)
	require.NoError(t, err)
	return string(b)
}

// protoText is a message as JSON, for comparisons with readable diffs.
func protoText(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

func feastInt64s(ids ...int64) *feasttypespb.RepeatedValue {
	r := &feasttypespb.RepeatedValue{}
	for _, id := range ids {
		r.Val = append(r.Val, &feasttypespb.Value{Val: &feasttypespb.Value_Int64Val{Int64Val: id}})
	}
	return r
}

func feastDoubles(xs ...float64) *feasttypespb.RepeatedValue {
	r := &feasttypespb.RepeatedValue{}
	for _, x := range xs {
		r.Val = append(r.Val, &feasttypespb.Value{Val: &feasttypespb.Value_DoubleVal{DoubleVal: x}})
	}
	return r
}

func feastStringLists(ls ...[]string) *feasttypespb.RepeatedValue {
	r := &feasttypespb.RepeatedValue{}
	for _, l := range ls {
		r.Val = append(r.Val, &feasttypespb.Value{Val: &feasttypespb.Value_StringListVal{StringListVal: &feasttypespb.StringList{Val: l}}})
	}
	return r
}

func feastFeatures(refs ...string) *feastservingpb.GetOnlineFeaturesRequest_Features {
	return &feastservingpb.GetOnlineFeaturesRequest_Features{Features: &feastservingpb.FeatureList{Val: refs}}
}

// feastCase is one lookup asked three ways: Feast's JSON, Feast's gRPC
// and Quiver's own gRPC.
type feastCase struct {
	name   string
	json   string
	feast  *feastservingpb.GetOnlineFeaturesRequest
	quiver *servingv1.GetOnlineFeaturesRequest
	keys   map[string][]int64
}

func feastCases() []feastCase {
	ids := func(xs ...int64) map[string]*servingv1.EntityColumn {
		return map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: xs}}
	}
	return []feastCase{
		{
			name:   "features",
			json:   `{"entities": {"driver_id": [1, 2, 3]}, "features": ["stats:rate", "stats:trips", "stats:emb", "stats:seen"], "full_feature_names": false}`,
			feast:  &feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("stats:rate", "stats:trips", "stats:emb", "stats:seen"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1, 2, 3)}},
			quiver: &servingv1.GetOnlineFeaturesRequest{Entities: ids(1, 2, 3), Features: []string{"stats:rate", "stats:trips", "stats:emb", "stats:seen"}},
			keys:   map[string][]int64{"driver_id": {1, 2, 3}},
		},
		{
			name:   "full feature names, a view's every feature, rows out of order",
			json:   `{"entities": {"driver_id": [3, 1]}, "features": ["stats:*"], "full_feature_names": true}`,
			feast:  &feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("stats:*"), FullFeatureNames: true, Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(3, 1)}},
			quiver: &servingv1.GetOnlineFeaturesRequest{Entities: ids(3, 1), Features: []string{"stats:*"}, FullFeatureNames: true},
			keys:   map[string][]int64{"driver_id": {3, 1}},
		},
		{
			name:   "feature service",
			json:   `{"entities": {"driver_id": [1, 2]}, "feature_service": "svc"}`,
			feast:  &feastservingpb.GetOnlineFeaturesRequest{Kind: &feastservingpb.GetOnlineFeaturesRequest_FeatureService{FeatureService: "svc"}, Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1, 2)}},
			quiver: &servingv1.GetOnlineFeaturesRequest{Entities: ids(1, 2), FeatureService: "svc"},
			keys:   map[string][]int64{"driver_id": {1, 2}},
		},
		{
			name: "on-demand, request fields sent as entities",
			json: `{"entities": {"driver_id": [1, 2, 3], "surge": [2, 2.5, 2], "tags": [["vip"], [], ["x"]]}, "features": ["scores:adjusted", "scores:tagged", "stats:rate"]}`,
			feast: &feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("scores:adjusted", "scores:tagged", "stats:rate"), Entities: map[string]*feasttypespb.RepeatedValue{
				"driver_id": feastInt64s(1, 2, 3), "surge": feastDoubles(2, 2.5, 2), "tags": feastStringLists([]string{"vip"}, nil, []string{"x"})}},
			quiver: &servingv1.GetOnlineFeaturesRequest{Entities: ids(1, 2, 3), Features: []string{"scores:adjusted", "scores:tagged", "stats:rate"},
				RequestContext: map[string]*servingv1.Values{"surge": {DoubleValues: []float64{2, 2.5, 2}},
					"tags": {ListValues: []*servingv1.Values{{StringValues: []string{"vip"}}, {}, {StringValues: []string{"x"}}}}}},
			keys: map[string][]int64{"driver_id": {1, 2, 3}},
		},
		{
			name: "on-demand, request fields in request_context; a failed expression",
			json: `{"entities": {"driver_id": [1, 4]}, "request_context": {"surge": [0.5, 1], "tags": [[], []]}, "features": ["scores:per_trip", "scores:adjusted"]}`,
			feast: &feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("scores:per_trip", "scores:adjusted"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1, 4)},
				RequestContext: map[string]*feasttypespb.RepeatedValue{"surge": feastDoubles(0.5, 1), "tags": feastStringLists(nil, nil)}},
			quiver: &servingv1.GetOnlineFeaturesRequest{Entities: ids(1, 4), Features: []string{"scores:per_trip", "scores:adjusted"},
				RequestContext: map[string]*servingv1.Values{"surge": {DoubleValues: []float64{0.5, 1}}, "tags": {ListValues: []*servingv1.Values{{}, {}}}}},
			keys: map[string][]int64{"driver_id": {1, 4}},
		},
	}
}

// TestFeastAnswersEqualQuivers: for the same lookup, Feast's JSON and
// Feast's gRPC answer what Quiver's own gRPC does (values, statuses, event
// times, order), with the join keys first, over the embedded store and
// over a real Redis.
func TestFeastAnswersEqualQuivers(t *testing.T) {
	stores := map[string]func(t *testing.T) online.Store{
		"embedded": func(t *testing.T) online.Store { return embedded(t) },
		"redis": func(t *testing.T) online.Store {
			srv := redistest.Start(t)
			store, err := online.OpenRedis(context.Background(), online.RedisOptions{Addr: srv.Addr()})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, store.Close()) })
			return store
		},
	}
	for storeName, open := range stores {
		t.Run(storeName, func(t *testing.T) {
			h := startServer(t, open(t), Config{})
			ctx := context.Background()
			// Driver 4 has no trips: 100 / trips fails for it alone.
			_, err := h.store.Write(ctx, []online.Row{{Key: online.Key{Project: "srv", View: "stats", Entity: intEntity(t, 4)}, Value: encodeStats(t, 0.25, 0)}}, online.WriteOptions{})
			require.NoError(t, err)
			feast := feastservingpb.NewServingServiceClient(h.conn)
			for _, tc := range feastCases() {
				q, err := h.client.GetOnlineFeatures(ctx, tc.quiver)
				require.NoError(t, err, tc.name)
				want := expectFeast(t, tc.keys, []string{"driver_id"}, q)

				got, err := feast.GetOnlineFeatures(ctx, tc.feast)
				require.NoError(t, err, tc.name)
				require.Equal(t, protoText(t, want), protoText(t, got), "%s: Feast gRPC", tc.name)

				code, body := post(t, h.httpBase+"/get-online-features", tc.json)
				require.Equal(t, http.StatusOK, code, "%s: %s", tc.name, body)
				var js feastJSONAnswer
				dec := json.NewDecoder(bytes.NewReader(body))
				dec.DisallowUnknownFields()
				require.NoError(t, dec.Decode(&js), "%s: %s", tc.name, body)
				require.Equal(t, want.Metadata.FeatureNames.Val, js.Metadata.FeatureNames, tc.name)
				require.Empty(t, js.Metadata.FeatureViewMetadata, tc.name)
				require.Len(t, js.Results, len(want.Results), tc.name)
				for j, w := range want.Results {
					r := js.Results[j]
					name := want.Metadata.FeatureNames.Val[j]
					require.Len(t, r.Values, len(w.Values), "%s: %s", tc.name, name)
					for i := range w.Values {
						require.Equal(t, jsonOfFeast(t, w.Values[i]), string(r.Values[i]), "%s: %s row %d", tc.name, name, i)
						require.Equal(t, w.Statuses[i].String(), r.Statuses[i], "%s: %s row %d", tc.name, name, i)
						wt := w.EventTimestamps[i].AsTime().Format(time.RFC3339Nano) // whole seconds here
						require.Equal(t, wt, r.EventTimestamps[i], "%s: %s row %d", tc.name, name, i)
					}
				}
			}
		})
	}
}

// TestFeastJSONShape pins one answer of POST /get-online-features as a
// Feast client reads it.
func TestFeastJSONShape(t *testing.T) {
	h := startServer(t, embedded(t), Config{})
	code, body := post(t, h.httpBase+"/get-online-features",
		`{"entities": {"driver_id": [1, 2, 3]}, "features": ["stats:rate", "stats:seen", "stats:emb"], "include_feature_view_version_metadata": true}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.JSONEq(t, fmt.Sprintf(`{
		"metadata": {"feature_names": ["driver_id", "rate", "seen", "emb"], "feature_view_metadata": [{"name": "stats"}]},
		"results": [
			{"values": [1, 2, 3], "statuses": ["PRESENT", "PRESENT", "PRESENT"],
			 "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
			{"values": [0.5, null, null], "statuses": ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"],
			 "event_timestamps": ["2026-05-01T11:59:00Z", "2026-05-01T10:00:00Z", "1970-01-01T00:00:00Z"]},
			{"values": [%d, null, null], "statuses": ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"],
			 "event_timestamps": ["2026-05-01T11:59:00Z", "2026-05-01T10:00:00Z", "1970-01-01T00:00:00Z"]},
			{"values": [[1, 2], null, null], "statuses": ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"],
			 "event_timestamps": ["2026-05-01T11:59:00Z", "2026-05-01T10:00:00Z", "1970-01-01T00:00:00Z"]}
		]}`, now.Unix()), string(body))

	// The same over gRPC, metadata included.
	got, err := feastservingpb.NewServingServiceClient(h.conn).GetOnlineFeatures(context.Background(), &feastservingpb.GetOnlineFeaturesRequest{
		Kind: feastFeatures("stats:rate", "scores:adjusted"), IncludeFeatureViewVersionMetadata: true,
		Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1), "surge": feastDoubles(2), "tags": feastStringLists(nil)}})
	require.NoError(t, err)
	require.Equal(t, []string{"driver_id", "rate", "adjusted"}, got.Metadata.FeatureNames.Val)
	require.Len(t, got.Metadata.FeatureViewMetadata, 2)
	require.Equal(t, "stats", got.Metadata.FeatureViewMetadata[0].Name)
	require.Equal(t, "scores", got.Metadata.FeatureViewMetadata[1].Name)
	require.Equal(t, 1.0, got.Results[2].Values[0].GetDoubleVal())

	// No rows: no event_timestamps, as Feast has it.
	code, body = post(t, h.httpBase+"/get-online-features", `{"entities": {"driver_id": []}, "features": ["stats:rate"]}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.JSONEq(t, `{"metadata": {"feature_names": ["driver_id", "rate"]},
		"results": [{"values": [], "statuses": []}, {"values": [], "statuses": []}]}`, string(body))

	info, err := feastservingpb.NewServingServiceClient(h.conn).GetFeastServingInfo(context.Background(), &feastservingpb.GetFeastServingInfoRequest{})
	require.NoError(t, err)
	require.Equal(t, "test", info.Version)
	hc, err := healthpb.NewHealthClient(h.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "feast.serving.ServingService"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.Status)
}

// TestFeastInvalidRequests: what Quiver refuses, both Feast surfaces
// refuse with the same reason, as Quiver's own HTTP surface does: 400
// with a Feast error detail, and INVALID_ARGUMENT.
func TestFeastInvalidRequests(t *testing.T) {
	h := startServer(t, embedded(t), Config{})
	feast := feastservingpb.NewServingServiceClient(h.conn)
	for _, tc := range []struct {
		name, json string
		// quiver is the same request to POST /v1/online-features ("" when
		// it has none); want is part of the reason.
		quiver string
		feast  *feastservingpb.GetOnlineFeaturesRequest
		want   string
	}{
		{"unknown feature", `{"entities": {"driver_id": [1]}, "features": ["stats:nope"]}`, `{"entities": {"driver_id": [1]}, "features": ["stats:nope"]}`,
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("stats:nope"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1)}},
			`view stats has no feature "nope"`},
		{"unknown view", `{"entities": {"driver_id": [1]}, "features": ["nope:rate"]}`, `{"entities": {"driver_id": [1]}, "features": ["nope:rate"]}`,
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("nope:rate"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1)}},
			"nope"},
		{"reference without a view", `{"entities": {"driver_id": [1]}, "features": ["rate"]}`, `{"entities": {"driver_id": [1]}, "features": ["rate"]}`,
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("rate"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1)}},
			"rate"},
		{"unknown feature service", `{"entities": {"driver_id": [1]}, "feature_service": "nope"}`, `{"entities": {"driver_id": [1]}, "feature_service": "nope"}`,
			&feastservingpb.GetOnlineFeaturesRequest{Kind: &feastservingpb.GetOnlineFeaturesRequest_FeatureService{FeatureService: "nope"}, Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1)}},
			"nope"},
		{"missing join key", `{"entities": {"rider": [1]}, "features": ["stats:rate"]}`, `{"entities": {"rider": [1]}, "features": ["stats:rate"]}`,
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("stats:rate"), Entities: map[string]*feasttypespb.RepeatedValue{"rider": feastInt64s(1)}},
			"missing join key driver_id"},
		{"string for an int64 key", `{"entities": {"driver_id": ["1"]}, "features": ["stats:rate"]}`, `{"entities": {"driver_id": ["1"]}, "features": ["stats:rate"]}`,
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("stats:rate"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": {Val: []*feasttypespb.Value{{Val: &feasttypespb.Value_StringVal{StringVal: "1"}}}}}},
			"is not an int64"},
		{"too many entities", `{"entities": {"driver_id": [1, 2, 3, 4]}, "features": ["stats:rate"]}`, `{"entities": {"driver_id": [1, 2, 3, 4]}, "features": ["stats:rate"]}`,
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("stats:rate"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1, 2, 3, 4)}},
			"has 4 rows; the limit is 3"},
		{"missing request field", `{"entities": {"driver_id": [1]}, "features": ["scores:adjusted"]}`, `{"entities": {"driver_id": [1]}, "features": ["scores:adjusted"]}`,
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("scores:adjusted"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1)}},
			"missing request field surge (float64) of on-demand view scores"},
		{"ragged entities", `{"entities": {"driver_id": [1, 2], "surge": [1], "tags": [[], []]}, "features": ["scores:adjusted"]}`, "",
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("scores:adjusted"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1, 2), "surge": feastDoubles(1), "tags": feastStringLists(nil, nil)}},
			"entity columns have different lengths"},
		{"request field given twice", `{"entities": {"driver_id": [1], "surge": [1]}, "request_context": {"surge": [1]}, "features": ["scores:adjusted"]}`, "",
			&feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("scores:adjusted"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1), "surge": feastDoubles(1)},
				RequestContext: map[string]*feasttypespb.RepeatedValue{"surge": feastDoubles(1)}},
			"request field surge is given twice, in entities and in request_context"},
		{"both features and a service", `{"entities": {"driver_id": [1]}, "features": ["stats:rate"], "feature_service": "svc"}`, `{"entities": {"driver_id": [1]}, "features": ["stats:rate"], "feature_service": "svc"}`, nil, "not both"},
		{"unknown member", `{"entities": {"driver_id": [1]}, "features": ["stats:rate"], "bogus": 1}`, "", nil, `unknown field "bogus"`},
		{"object as a value", `{"entities": {"driver_id": [{}]}, "features": ["stats:rate"]}`, "", nil, "entities.driver_id[0]: an object is not a request field value"},
		{"a key twice", `{"entities": {"driver_id": [1]}, "entities": {"driver_id": [2]}, "features": ["stats:rate"]}`, "", nil, `key "entities" appears twice`},
		{"not JSON", `{"entities": `, "", nil, "unexpected EOF"},
	} {
		code, body := post(t, h.httpBase+"/get-online-features", tc.json)
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", tc.name, body)
		msg := feastDetail(t, body).Message
		require.Contains(t, msg, tc.want, tc.name)
		if tc.quiver != "" {
			code, qbody := post(t, h.httpBase+"/v1/online-features", tc.quiver)
			require.Equal(t, http.StatusBadRequest, code, tc.name)
			var qerr struct{ Error string }
			require.NoError(t, json.Unmarshal(qbody, &qerr))
			require.Equal(t, qerr.Error, msg, "%s: the reason Quiver's own surface gives", tc.name)
		}
		if tc.feast != nil {
			_, err := feast.GetOnlineFeatures(context.Background(), tc.feast)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", tc.name, err)
			require.Equal(t, msg, status.Convert(err).Message(), tc.name)
		}
	}

	// A Value member Quiver does not declare (uuid_val, 36) is refused, not
	// read as null.
	uuid := &feasttypespb.Value{}
	uuid.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 36, protowire.BytesType), "6f1c…"))
	_, err := feast.GetOnlineFeatures(context.Background(), &feastservingpb.GetOnlineFeaturesRequest{Kind: feastFeatures("stats:rate"),
		Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": {Val: []*feasttypespb.Value{uuid}}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, "entities.driver_id[0]: sets Value field 36, a value type Quiver does not take")
}

// TestFeastValues: every Quiver value type in Feast's Value members and
// in Feast's JSON.
func TestFeastValues(t *testing.T) {
	typ := func(s string) registry.ValueType {
		vt, err := registry.ParseValueType(s)
		require.NoError(t, err)
		return vt
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 999_000, time.UTC)
	for _, tc := range []struct {
		typ   string
		v     any
		proto *feasttypespb.Value
		json  string
	}{
		{"int32", int32(-7), &feasttypespb.Value{Val: &feasttypespb.Value_Int32Val{Int32Val: -7}}, `-7`},
		{"int64", int64(math.MaxInt64), &feasttypespb.Value{Val: &feasttypespb.Value_Int64Val{Int64Val: math.MaxInt64}}, `9223372036854775807`},
		{"float32", float32(0.1), &feasttypespb.Value{Val: &feasttypespb.Value_FloatVal{FloatVal: 0.1}}, `0.1`},
		{"float64", 0.1, &feasttypespb.Value{Val: &feasttypespb.Value_DoubleVal{DoubleVal: 0.1}}, `0.1`},
		{"float64", math.NaN(), &feasttypespb.Value{Val: &feasttypespb.Value_DoubleVal{DoubleVal: math.NaN()}}, `"NaN"`},
		{"float32", float32(math.Inf(-1)), &feasttypespb.Value{Val: &feasttypespb.Value_FloatVal{FloatVal: float32(math.Inf(-1))}}, `"-Infinity"`},
		{"bool", true, &feasttypespb.Value{Val: &feasttypespb.Value_BoolVal{BoolVal: true}}, `true`},
		{"string", "é<", &feasttypespb.Value{Val: &feasttypespb.Value_StringVal{StringVal: "é<"}}, `"é\u003c"`},
		{"bytes", []byte{0, 0xff}, &feasttypespb.Value{Val: &feasttypespb.Value_BytesVal{BytesVal: []byte{0, 0xff}}}, `"AP8="`},
		{"timestamp", at, &feasttypespb.Value{Val: &feasttypespb.Value_UnixTimestampVal{UnixTimestampVal: at.Unix()}}, fmt.Sprint(at.Unix())},
		{"list<int32>", []int32{1, 2}, &feasttypespb.Value{Val: &feasttypespb.Value_Int32ListVal{Int32ListVal: &feasttypespb.Int32List{Val: []int32{1, 2}}}}, `[1,2]`},
		{"list<int64>", []int64{3}, &feasttypespb.Value{Val: &feasttypespb.Value_Int64ListVal{Int64ListVal: &feasttypespb.Int64List{Val: []int64{3}}}}, `[3]`},
		{"list<float32>", []float32{0.5, float32(math.NaN())}, &feasttypespb.Value{Val: &feasttypespb.Value_FloatListVal{FloatListVal: &feasttypespb.FloatList{Val: []float32{0.5, float32(math.NaN())}}}}, `[0.5,"NaN"]`},
		{"list<float64>", []float64{}, &feasttypespb.Value{Val: &feasttypespb.Value_DoubleListVal{DoubleListVal: &feasttypespb.DoubleList{Val: []float64{}}}}, `[]`},
		{"list<bool>", []bool{false}, &feasttypespb.Value{Val: &feasttypespb.Value_BoolListVal{BoolListVal: &feasttypespb.BoolList{Val: []bool{false}}}}, `[false]`},
		{"list<string>", []string{"a"}, &feasttypespb.Value{Val: &feasttypespb.Value_StringListVal{StringListVal: &feasttypespb.StringList{Val: []string{"a"}}}}, `["a"]`},
		{"list<bytes>", [][]byte{{1}}, &feasttypespb.Value{Val: &feasttypespb.Value_BytesListVal{BytesListVal: &feasttypespb.BytesList{Val: [][]byte{{1}}}}}, `["AQ=="]`},
		{"list<timestamp>", []time.Time{at, time.Unix(-1, 0)}, &feasttypespb.Value{Val: &feasttypespb.Value_UnixTimestampListVal{UnixTimestampListVal: &feasttypespb.Int64List{Val: []int64{at.Unix(), -1}}}}, fmt.Sprintf(`[%d,-1]`, at.Unix())},
		{"list<int64>", []any{int64(1), int32(2)}, &feasttypespb.Value{Val: &feasttypespb.Value_Int64ListVal{Int64ListVal: &feasttypespb.Int64List{Val: []int64{1, 2}}}}, `[1,2]`},
		{"float32", nil, &feasttypespb.Value{}, `null`},
	} {
		name := fmt.Sprintf("%s %v", tc.typ, tc.v)
		got := feastValue(typ(tc.typ), tc.v)
		require.True(t, proto.Equal(tc.proto, got), "%s: %v", name, got)
		b, err := json.Marshal(feastJSONValue(typ(tc.typ), tc.v))
		require.NoError(t, err, name)
		require.Equal(t, tc.json, string(b), name)
	}

	// Requests: each Value member as the Go value the lookup takes.
	for _, tc := range []struct {
		v    *feasttypespb.Value
		want any
	}{
		{&feasttypespb.Value{}, nil},
		{&feasttypespb.Value{Val: &feasttypespb.Value_NullVal{}}, nil},
		{&feasttypespb.Value{Val: &feasttypespb.Value_Int32Val{Int32Val: 5}}, int32(5)},
		{&feasttypespb.Value{Val: &feasttypespb.Value_Int64Val{Int64Val: 5}}, int64(5)},
		{&feasttypespb.Value{Val: &feasttypespb.Value_FloatVal{FloatVal: 0.5}}, float32(0.5)},
		{&feasttypespb.Value{Val: &feasttypespb.Value_DoubleVal{DoubleVal: 0.5}}, 0.5},
		{&feasttypespb.Value{Val: &feasttypespb.Value_BoolVal{BoolVal: true}}, true},
		{&feasttypespb.Value{Val: &feasttypespb.Value_StringVal{StringVal: "x"}}, "x"},
		{&feasttypespb.Value{Val: &feasttypespb.Value_BytesVal{BytesVal: []byte("x")}}, []byte("x")},
		{&feasttypespb.Value{Val: &feasttypespb.Value_UnixTimestampVal{UnixTimestampVal: 1}}, time.Unix(1, 0).UTC()},
		{&feasttypespb.Value{Val: &feasttypespb.Value_DoubleListVal{DoubleListVal: &feasttypespb.DoubleList{Val: []float64{1, 2}}}}, []any{1.0, 2.0}},
		{&feasttypespb.Value{Val: &feasttypespb.Value_StringListVal{StringListVal: &feasttypespb.StringList{}}}, []any{}},
		{&feasttypespb.Value{Val: &feasttypespb.Value_UnixTimestampListVal{UnixTimestampListVal: &feasttypespb.Int64List{Val: []int64{2}}}}, []any{time.Unix(2, 0).UTC()}},
	} {
		got, err := feastGoValue(tc.v)
		require.NoError(t, err, "%v", tc.v)
		require.Equal(t, tc.want, got, "%v", tc.v)
	}
}

// TestFeastTimestamp: event times as Feast's feature server writes them.
func TestFeastTimestamp(t *testing.T) {
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "1970-01-01T00:00:00Z"},
		{time.Unix(0, 0), "1970-01-01T00:00:00Z"},
		{base, "2026-05-01T12:00:00Z"},
		{base.Add(250 * time.Millisecond), "2026-05-01T12:00:00.250Z"},
		{base.Add(1500 * time.Microsecond), "2026-05-01T12:00:00.001500Z"},
		{base.Add(7), "2026-05-01T12:00:00.000000007Z"},
		{base.In(time.FixedZone("x", 3600)), "2026-05-01T12:00:00Z"},
		{time.Unix(-1, 0), "1969-12-31T23:59:59Z"},
	} {
		require.Equal(t, tc.want, feastTimestamp(tc.t))
	}
}

// TestFeastPush: POST /push with Feast's columns applies the rows as
// POST /v1/push does (online and to the offline log), with timestamps as
// Feast's clients write them; what Quiver refuses it refuses whole.
func TestFeastPush(t *testing.T) {
	h := startPushServer(t, Config{}, true)
	ctx := context.Background()
	code, body := post(t, h.httpBase+"/push", `{"push_source_name": "driver_app", "to": "online_and_offline", "df": {
		"driver_id": [1001, 1002], "available": [true, null], "battery": [0.5, 1],
		"ts": ["2026-11-23 10:00:00", "2026-11-23T11:01:00+01:00"]}}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Empty(t, body, "Feast's server answers a push with an empty 200")
	require.Equal(t, map[string][]any{
		"available": {true, nil}, "battery": {float32(0.5), float32(1)},
		"pings_10m": {int64(1), int64(1)}, "min_battery_1h": {float32(0.5), float32(1)},
	}, withNulls(h.features(t, ctx, 1001, 1002)))
	require.Equal(t, []string{"1001 true 0.5 2026-11-23T10:00:00Z", "1002 null 1 2026-11-23T10:01:00Z"}, logRows(t, h.dataRoot, "driver_status"))

	// Feast's default destination, online; the options Feast's clients send.
	code, body = post(t, h.httpBase+"/push", `{"push_source_name": "driver_app", "allow_registry_cache": true, "transform_on_write": true,
		"df": {"driver_id": [1003], "available": [false], "battery": [0.25], "ts": ["2026-11-23 10:00:30.250000"]}}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Contains(t, logRows(t, h.dataRoot, "driver_status"), "1003 false 0.25 2026-11-23T10:00:30Z", "Quiver writes the offline log of every push")

	// Feast's lookup reads what was pushed.
	code, body = post(t, h.httpBase+"/get-online-features", `{"entities": {"driver_id": [1002, 1003]}, "features": ["driver_status:available", "driver_status:battery"]}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.JSONEq(t, `{"metadata": {"feature_names": ["driver_id", "available", "battery"]}, "results": [
		{"values": [1002, 1003], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
		{"values": [null, false], "statuses": ["NULL_VALUE", "PRESENT"], "event_timestamps": ["2026-11-23T10:01:00Z", "2026-11-23T10:00:30.250Z"]},
		{"values": [1, 0.25], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["2026-11-23T10:01:00Z", "2026-11-23T10:00:30.250Z"]}]}`, string(body))

	before := len(logRows(t, h.dataRoot, "driver_status"))
	row := `"driver_id": [1004], "available": [true], "battery": [0.5], "ts": ["2026-11-23T10:00:00Z"]`
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"push_source_name": "driver_app", "to": "offline", "df": {` + row + `}}`, 400,
			`to "offline" is not supported: Quiver applies a push online and to the offline log together (send "online" or "online_and_offline")`},
		{`{"push_source_name": "driver_app", "to": "elsewhere", "df": {` + row + `}}`, 400, `to "elsewhere" is not a push destination`},
		{`{"df": {` + row + `}}`, 400, "push_source_name is required"},
		{`{"push_source_name": "driver_app", "df": {` + row + `}, "extra": 1}`, 400, `unknown field "extra"`},
		{`{"push_source_name": "driver_app", "df": {"driver_id": [1, 2], "available": [true], "battery": [1, 1], "ts": ["2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z"]}}`, 400,
			"df column battery has 2 values, column available has 1: all columns have the same length"},
		{`{"push_source_name": "driver_app", "df": {"driver_id": [1004], "available": [true], "ts": ["2026-11-23T10:00:00Z"]}}`, 400, "row 0: field battery: is missing"},
		{`{"push_source_name": "driver_app", "df": {` + row + `, "created": ["2026-11-23T10:00:00Z"]}}`, 400, "row 0: field created: not a field of source driver_app"},
		{`{"push_source_name": "driver_app", "df": {"driver_id": [1004], "available": [true], "battery": [0.5], "ts": ["yesterday"]}}`, 400, "row 0: field ts:"},
		{`{"push_source_name": "driver_app", "df": {"driver_id": {"0": 1004}}}`, 400, "cannot unmarshal object"},
		{`{"push_source_name": "nope", "df": {` + row + `}}`, 400, `"nope" is not a push source`},
		{`{"push_source_name": "driver_app", "df": {"driver_id": [1, 2, 3, 4, 5], "available": [true, true, true, true, true], "battery": [1, 1, 1, 1, 1], "ts": [1, 1, 1, 1, 1]}}`, 400,
			"5 rows; the limit is 4 per push"},
	} {
		code, body := post(t, h.httpBase+"/push", tc.body)
		require.Equal(t, tc.code, code, "%s: %s", tc.body, body)
		require.Contains(t, feastDetail(t, body).Message, tc.want, tc.body)
	}
	require.Len(t, logRows(t, h.dataRoot, "driver_status"), before, "a refused push applies nothing")

	h = startPushServer(t, Config{}, false)
	code, body = post(t, h.httpBase+"/push", `{"push_source_name": "driver_app", "df": {`+row+`}}`)
	require.Equal(t, http.StatusNotImplemented, code)
	require.Contains(t, feastDetail(t, body).Message, "this server takes no pushes")
}

// TestParseFeastTime: the timestamp forms of Feast's clients, naive ones
// in UTC.
func TestParseFeastTime(t *testing.T) {
	want := time.Date(2026, 11, 23, 10, 0, 0, 250_000_000, time.UTC)
	for _, s := range []string{"2026-11-23 10:00:00.25", "2026-11-23T10:00:00.250000", "2026-11-23 11:00:00.25+01:00", "2026-11-23 10:00:00.250000+00:00"} {
		got, ok := parseFeastTime(s)
		require.True(t, ok, s)
		require.True(t, want.Equal(got), "%s: %s", s, got)
	}
	got, ok := parseFeastTime("2026-11-23")
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), got)
	for _, s := range []string{"", "2026-11-23T10:00:00Z", "23/11/2026", "2026-11-23 25:00:00"} {
		_, ok := parseFeastTime(s)
		require.False(t, ok, "%q is left to the source's decoder", s)
	}
}

// FuzzDecodeFeastOnlineFeaturesRequest: the decoder of Feast's JSON lookup
// never panics, every error it returns is an invalid request, and what it
// accepts holds only the Go values the lookup takes.
func FuzzDecodeFeastOnlineFeaturesRequest(f *testing.F) {
	for _, seed := range []string{
		`{"entities": {"driver_id": [1001, 1002]}, "features": ["driver_hourly:conv_rate"], "full_feature_names": false}`,
		`{"entities": {"driver_id": [1]}, "feature_service": "svc", "full_feature_names": true, "include_feature_view_version_metadata": true}`,
		`{"entities": {"driver_id": [1], "surge": [1.5], "tags": [["vip"]]}, "features": ["scores:adjusted"]}`,
		`{"entities": {"driver_id": [1]}, "request_context": {"surge": [2e0]}, "features": ["scores:*"]}`,
		`{"entities": {"driver_id": [1.5, "x", null, true, {}]}}`, `{"entities": null, "feature_service": null}`,
		`{"entities": {"d": [1], "d": [2]}}`, `{"features": "stats:rate"}`, `{"entities": {"driver_id": 1}}`,
		`{"entities": {"driver_id": [123456789012345678901234567890, -9223372036854775808, 1e999]}}`,
		`{"request_context": {"deep": [` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `]}}`,
		"{\"entities\": {\"d\xff\": [\"\xfe\"]}, \"features\": [\"v:\xc0\"]}",
		`{"entities": {}} {}`, `{"Entities": {}}`, `[]`, `{`, ``, `null`, `"x"`,
	} {
		f.Add([]byte(seed))
	}
	var valid func(v any) bool
	valid = func(v any) bool {
		switch x := v.(type) {
		case nil, int64, float64, string, bool:
			return true
		case []any:
			for _, e := range x {
				if !valid(e) {
					return false
				}
			}
			return true
		}
		return false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeFeastOnlineFeaturesRequest(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, online.ErrInvalidRequest) {
				t.Fatalf("error is not an invalid request: %v", err)
			}
			return
		}
		for what, cols := range map[string]map[string][]any{"entities": req.Entities, "request_context": req.RequestContext} {
			for name, col := range cols {
				for i, v := range col {
					if !valid(v) {
						t.Fatalf("%s.%s[%d] is %T: %v", what, name, i, v, v)
					}
				}
			}
		}
	})
}

// FuzzDecodeFeastPushRequest: the decoder of Feast's push never panics,
// every error refuses the push, and what it accepts has a source, a
// destination Quiver honours, columns of one length, and rows that are
// JSON objects of one member per column.
func FuzzDecodeFeastPushRequest(f *testing.F) {
	for _, seed := range []string{
		`{"push_source_name": "driver_app", "df": {"driver_id": [1001], "available": [true], "battery": [0.5], "ts": ["2026-11-23 10:00:00"]}, "to": "online"}`,
		`{"push_source_name": "s", "df": {"ts": ["2026-11-23T10:00:00.5+01:00", 1795428000000, null], "times": [["2026-11-23 10:00:00"], [], null], "i64": [1, 2, 3]}, "to": "online_and_offline"}`,
		`{"push_source_name": "s", "df": {}, "allow_registry_cache": false, "transform_on_write": false}`,
		`{"push_source_name": "s", "df": {"a": [1], "b": []}}`, `{"push_source_name": "s", "to": "offline"}`,
		`{"push_source_name": "", "df": {}}`, `{"push_source_name": "s", "df": {"a": {"0": 1}}}`,
		`{"push_source_name": "s", "df": {"ts": ["` + strings.Repeat("9", 100) + `", "\u0000", " 2026-01-01"]}}`,
		`{"push_source_name": "s", "df": {"a": [1], "a": [2]}}`, `{"push_source_name": "s", "extra": 1}`,
		"{\"push_source_name\": \"s\xff\", \"df\": {\"\xfe\": [\"\xc0\"]}}",
		`{"push_source_name": "s"} {}`, `[]`, `{`, ``, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeFeastPushRequest(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, stream.ErrInvalidPush) {
				t.Fatalf("error does not refuse the push: %v", err)
			}
			return
		}
		if req.PushSourceName == "" {
			t.Fatal("accepted a push without a source")
		}
		switch req.To {
		case "", "online", "online_and_offline":
		default:
			t.Fatalf("accepted to %q", req.To)
		}
		rows := req.rows(pushFuzzFields)
		for i, row := range rows {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(row, &obj); err != nil {
				t.Fatalf("row %d is not a JSON object: %v: %q", i, err, row)
			}
			if len(obj) != len(req.DF) {
				t.Fatalf("row %d has %d members for %d columns: %q", i, len(obj), len(req.DF), row)
			}
		}
		for name, col := range req.DF {
			if len(col) != len(rows) {
				t.Fatalf("column %s has %d values for %d rows", name, len(col), len(rows))
			}
		}
	})
}

// FuzzFeastRequestProto: any Feast gRPC lookup message converts without
// panicking, and every error is an invalid request.
func FuzzFeastRequestProto(f *testing.F) {
	uuid := &feasttypespb.Value{}
	uuid.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 36, protowire.BytesType), "u"))
	for _, m := range []*feastservingpb.GetOnlineFeaturesRequest{
		{Kind: feastFeatures("stats:rate"), Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1, 2)}},
		{Kind: &feastservingpb.GetOnlineFeaturesRequest_FeatureService{FeatureService: "svc"}, FullFeatureNames: true,
			Entities:       map[string]*feasttypespb.RepeatedValue{"driver_id": feastInt64s(1), "surge": feastDoubles(1.5), "tags": feastStringLists([]string{"a"})},
			RequestContext: map[string]*feasttypespb.RepeatedValue{"x": {Val: []*feasttypespb.Value{{Val: &feasttypespb.Value_UnixTimestampListVal{UnixTimestampListVal: &feasttypespb.Int64List{Val: []int64{math.MinInt64}}}}}}}},
		{Entities: map[string]*feasttypespb.RepeatedValue{"driver_id": {Val: []*feasttypespb.Value{uuid, {}, {Val: &feasttypespb.Value_NullVal{}}}}}},
	} {
		b, err := proto.Marshal(m)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m feastservingpb.GetOnlineFeaturesRequest
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		req, err := feastRequestProto(&m)
		if err != nil {
			if !errors.Is(err, online.ErrInvalidRequest) {
				t.Fatalf("error is not an invalid request: %v", err)
			}
			return
		}
		if len(req.Entities) != len(m.GetEntities()) || len(req.RequestContext) != len(m.GetRequestContext()) {
			t.Fatalf("lost columns: %d/%d entities, %d/%d request fields", len(req.Entities), len(m.GetEntities()), len(req.RequestContext), len(m.GetRequestContext()))
		}
	})
}
