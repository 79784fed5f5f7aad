package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
)

// pushAt is when the pushed rows of these tests happen; lookups run two
// minutes later.
var pushAt = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type pushHarness struct {
	client   servingv1.ServingClient
	httpBase string
	dataRoot string
}

// startPushServer serves the quickstart's definitions over an embedded
// store, with the stream path taking pushes when push is set.
func startPushServer(t *testing.T, cfg Config, push bool) *pushHarness {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, quickstart.Scaffold(dir, quickstart.GenerateOptions{Drivers: 5, Days: 1}))
	repo, err := registry.LoadRepo(dir, registry.LoadOptions{})
	require.NoError(t, err)
	store := embedded(t)
	snap := &registry.Snapshot{Project: repo.Defs.Project, Version: 1, Hash: "sha256:x", Defs: repo.Defs}
	lookup := online.NewLookup(store, online.LookupOptions{Now: func() time.Time { return pushAt.Add(2 * time.Minute) }})
	serving := NewServing(lookup, func() *registry.Snapshot { return snap }, Limits{MaxPushRows: 4, MaxRequestBytes: 64 << 10}, "test")
	if push {
		applier, err := stream.NewApplier(repo.Defs, store, repo.Config.DataRoot(), nil, nil)
		require.NoError(t, err)
		serving.SetPusher(applier)
	}
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	srv, err := New(cfg, serving, func(context.Context) error { return nil })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, conn.Close()) })
	return &pushHarness{client: servingv1.NewServingClient(conn), httpBase: "http://" + srv.HTTPAddr().String(), dataRoot: repo.Config.DataRoot()}
}

// features looks driver_status:* and driver_pings:* up, by feature name.
func (h *pushHarness) features(t *testing.T, ctx context.Context, ids ...int64) map[string][]any {
	t.Helper()
	resp, err := h.client.GetOnlineFeatures(ctx, &servingv1.GetOnlineFeaturesRequest{
		Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: ids}},
		Features: []string{"driver_status:*", "driver_pings:*"},
	})
	require.NoError(t, err)
	out := map[string][]any{}
	for _, fv := range resp.Features {
		vals := make([]any, len(ids))
		for i := range ids {
			if fv.Statuses[i] != servingv1.Status_PRESENT {
				vals[i] = fv.Statuses[i].String()
				continue
			}
			switch {
			case fv.Values.BoolValues != nil:
				vals[i] = fv.Values.BoolValues[i]
			case fv.Values.FloatValues != nil:
				vals[i] = fv.Values.FloatValues[i]
			case fv.Values.Int64Values != nil:
				vals[i] = fv.Values.Int64Values[i]
			}
		}
		out[fv.Name] = vals
	}
	return out
}

// logRows reads a view's offline log as sorted lines
// "driver_id available battery ts".
func logRows(t *testing.T, dataRoot, view string) []string {
	t.Helper()
	files, err := streamlog.Files(dataRoot, view)
	require.NoError(t, err)
	var out []string
	for _, path := range files {
		r, err := file.OpenParquetFile(path, false)
		require.NoError(t, err)
		fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		require.NoError(t, err)
		tbl, err := fr.ReadTable(context.Background())
		require.NoError(t, err)
		rec := array.NewTableReader(tbl, -1)
		for rec.Next() {
			b := rec.Record()
			ids := b.Column(0).(*array.Int64)
			avail := b.Column(1).(*array.Boolean)
			battery := b.Column(2).(*array.Float32)
			ts := b.Column(3).(*array.Timestamp)
			unit := ts.DataType().(*arrow.TimestampType).Unit
			for i := range int(b.NumRows()) {
				a := "null"
				if avail.IsValid(i) {
					a = fmt.Sprint(avail.Value(i))
				}
				out = append(out, fmt.Sprintf("%d %s %g %s", ids.Value(i), a, battery.Value(i), ts.Value(i).ToTime(unit).UTC().Format(time.RFC3339)))
			}
		}
		rec.Release()
		tbl.Release()
		require.NoError(t, r.Close())
	}
	sort.Strings(out)
	return out
}

// statusColumns are typed columns of driver_app rows.
func statusColumns(ids []int64, avail []bool, battery []float64, ts []time.Time) map[string]*servingv1.Values {
	us := make([]int64, len(ts))
	for i, t := range ts {
		us[i] = t.UnixMicro()
	}
	return map[string]*servingv1.Values{
		"driver_id": {Int64Values: ids}, "available": {BoolValues: avail},
		"battery": {DoubleValues: battery}, "ts": {TimestampValues: us},
	}
}

func TestPushOverGRPC(t *testing.T) {
	h := startPushServer(t, Config{}, true)
	ctx := context.Background()
	at := func(m int) time.Time { return pushAt.Add(time.Duration(m) * time.Minute) }
	// Driver 1002's availability is null; battery arrives as doubles.
	resp, err := h.client.Push(ctx, &servingv1.PushRequest{
		Source:  "driver_app",
		Columns: statusColumns([]int64{1001, 1001, 1002}, []bool{true, false, false}, []float64{0.5, 0.25, 0.75}, []time.Time{at(0), at(1), at(1)}),
		Nulls:   map[string]*servingv1.NullMask{"available": {Null: []bool{false, false, true}}},
	})
	require.NoError(t, err)
	require.EqualValues(t, 3, resp.Rows)

	require.Equal(t, map[string][]any{
		"available":      {false, nil, "NOT_FOUND"},
		"battery":        {float32(0.25), float32(0.75), "NOT_FOUND"},
		"pings_10m":      {int64(2), int64(1), "NOT_FOUND"},
		"min_battery_1h": {float32(0.25), float32(0.75), "NOT_FOUND"},
	}, withNulls(h.features(t, ctx, 1001, 1002, 1003)))
	want := []string{
		"1001 false 0.25 2026-11-23T10:01:00Z",
		"1001 true 0.5 2026-11-23T10:00:00Z",
		"1002 null 0.75 2026-11-23T10:01:00Z",
	}
	require.Equal(t, want, logRows(t, h.dataRoot, "driver_status"))
	require.Equal(t, want, logRows(t, h.dataRoot, "driver_pings"))

	// Pushes of one source run one at a time: none is lost from the
	// aggregation tiles that each reads and writes back.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.client.Push(ctx, &servingv1.PushRequest{Source: "driver_app",
				Columns: statusColumns([]int64{1003}, []bool{true}, []float64{float64(i) / 10}, []time.Time{at(1)})})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got := h.features(t, ctx, 1003)
	require.Equal(t, []any{int64(8)}, got["pings_10m"])
	require.Equal(t, []any{float32(0)}, got["min_battery_1h"])
	require.Len(t, logRows(t, h.dataRoot, "driver_pings"), 11)
}

// withNulls shows a PRESENT zero value of a null row as nil: the lookup
// reports nulls as NULL_VALUE.
func withNulls(m map[string][]any) map[string][]any {
	for _, vals := range m {
		for i, v := range vals {
			if v == "NULL_VALUE" {
				vals[i] = nil
			}
		}
	}
	return m
}

func TestPushOverGRPCRefusesBadRequestsWhole(t *testing.T) {
	h := startPushServer(t, Config{}, true)
	ctx := context.Background()
	one := func() map[string]*servingv1.Values {
		return statusColumns([]int64{1001}, []bool{true}, []float64{0.5}, []time.Time{pushAt})
	}
	with := func(name string, v *servingv1.Values) map[string]*servingv1.Values {
		cols := one()
		if v == nil {
			delete(cols, name)
		} else {
			cols[name] = v
		}
		return cols
	}
	for _, tc := range []struct {
		req  *servingv1.PushRequest
		want string
	}{
		{&servingv1.PushRequest{Columns: one()}, "source is required"},
		{&servingv1.PushRequest{Source: "nope", Columns: one()}, "nope is not a stream source"},
		{&servingv1.PushRequest{Source: "trips", Columns: map[string]*servingv1.Values{
			"driver_id": {Int64Values: []int64{1}}, "rider_id": {StringValues: []string{"r"}},
			"fare": {DoubleValues: []float64{1}}, "ts": {TimestampValues: []int64{pushAt.UnixMicro()}}}},
			"source trips is a kafka source; only push sources take pushed rows"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("battery", nil)}, "missing column battery (float32)"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("speed", &servingv1.Values{DoubleValues: []float64{1}})},
			`unknown column "speed": source driver_app has driver_id, available, battery, ts`},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("battery", &servingv1.Values{StringValues: []string{"full"}})},
			"column battery: want float_values or double_values (float32), got string_values"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("driver_id", &servingv1.Values{DoubleValues: []float64{1001}})},
			"column driver_id: want int32_values or int64_values (int64), got double_values"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("ts", &servingv1.Values{Int64Values: []int64{1}})},
			"column ts: want timestamp_values (timestamp), got int64_values"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("driver_id", &servingv1.Values{Int64Values: []int64{1001, 1002}})},
			"column available has 1 rows, column driver_id has 2: all columns have the same length"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("battery", &servingv1.Values{DoubleValues: []float64{1}, FloatValues: []float32{1}})},
			"column battery: sets float_values and double_values"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("battery", &servingv1.Values{DoubleValues: []float64{1e39}})},
			"column battery row 0: 1e+39 does not fit float32"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: one(), Nulls: map[string]*servingv1.NullMask{"ts": {Null: []bool{true}}}},
			"row 0: field ts: is null"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: one(), Nulls: map[string]*servingv1.NullMask{"battery": {Null: []bool{false, true}}}},
			"column battery: nulls has 2 entries for 1 rows"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: one(), Nulls: map[string]*servingv1.NullMask{"speed": {Null: []bool{true}}}},
			`nulls name unknown column "speed"`},
		{&servingv1.PushRequest{Source: "driver_app", Columns: with("battery", &servingv1.Values{}), Nulls: map[string]*servingv1.NullMask{"battery": {Null: []bool{false}}}},
			"column battery row 0: not null, but the column holds no values"},
		// Row 0 is good, row 1 has no driver: neither is applied.
		{&servingv1.PushRequest{Source: "driver_app", Columns: statusColumns([]int64{1001, 0}, []bool{true, true}, []float64{0.5, 0.5}, []time.Time{pushAt, pushAt}),
			Nulls: map[string]*servingv1.NullMask{"driver_id": {Null: []bool{false, true}}}}, "row 1: field driver_id: is null"},
		{&servingv1.PushRequest{Source: "driver_app", Columns: statusColumns(make([]int64, 5), make([]bool, 5), make([]float64, 5), make([]time.Time, 5))},
			"5 rows; the limit is 4 per push"},
	} {
		_, err := h.client.Push(ctx, tc.req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		require.ErrorContains(t, err, tc.want)
		// The reason alone: the code already says the push is invalid.
		require.NotContains(t, status.Convert(err).Message(), "quiver: invalid push")
	}
	require.Equal(t, []any{"NOT_FOUND"}, h.features(t, ctx, 1001)["pings_10m"], "a refused push applies nothing")
	require.Empty(t, logRows(t, h.dataRoot, "driver_status"))

	// A column of nulls only needs no values.
	resp, err := h.client.Push(ctx, &servingv1.PushRequest{Source: "driver_app", Columns: with("available", &servingv1.Values{}),
		Nulls: map[string]*servingv1.NullMask{"available": {Null: []bool{true}}}})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.Rows)
	require.Equal(t, []string{"1001 null 0.5 2026-11-23T10:00:00Z"}, logRows(t, h.dataRoot, "driver_status"))
	// An empty push applies nothing and succeeds.
	resp, err = h.client.Push(ctx, &servingv1.PushRequest{Source: "driver_app", Columns: statusColumns(nil, nil, nil, nil)})
	require.NoError(t, err)
	require.EqualValues(t, 0, resp.Rows)
}

func postPush(t *testing.T, base, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/push", strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func TestPushOverHTTP(t *testing.T) {
	h := startPushServer(t, Config{}, true)
	ctx := context.Background()
	code, out := postPush(t, h.httpBase, "", `{"source": "driver_app", "rows": [
		{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"},
		{"driver_id": 1002, "available": null, "battery": 1, "ts": 1795428060000}
	]}`)
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Equal(t, map[string]any{"rows": 2.0}, out)
	require.Equal(t, map[string][]any{
		"available": {true, nil}, "battery": {float32(0.5), float32(1)},
		"pings_10m": {int64(1), int64(1)}, "min_battery_1h": {float32(0.5), float32(1)},
	}, withNulls(h.features(t, ctx, 1001, 1002)))
	require.Equal(t, []string{"1001 true 0.5 2026-11-23T10:00:00Z", "1002 null 1 2026-11-23T10:01:00Z"}, logRows(t, h.dataRoot, "driver_status"))

	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"source": "driver_app", "rows": [], "extra": 1}`, 400, `unknown field "extra"`},
		{`{"rows": []}`, 400, "source is required"},
		{`{"source": "driver_app", "rows": {}}`, 400, "cannot unmarshal object"},
		{`{"source": "driver_app", "rows": []} {}`, 400, "more than one JSON value"},
		{`{"source": "driver_app", "rows": [{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}, {"driver_id": 1001, "available": true, "ts": "2026-11-23T10:00:00Z"}]}`,
			400, "row 1: field battery: is missing"},
		{`{"source": "driver_app", "rows": [{"driver_id": "1001", "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}]}`,
			400, "row 0: field driver_id: want int64"},
		{`{"source": "driver_app", "rows": [1]}`, 400, "row 0: not a JSON object"},
		{`{"source": "trips", "rows": []}`, 400, "source trips is a kafka source"},
		{`{"source": "nope", "rows": []}`, 400, `"nope" is not a push source that an online view reads (push sources: [driver_app])`},
		{`{"source": "driver_app", "rows": [{}, {}, {}, {}, {}]}`, 400, "5 rows; the limit is 4 per push"},
		{`{"source": "driver_app", "rows": [` + strings.Repeat(`{"driver_id": 1},`, 8<<10) + `{}]}`, 413, "request body over 65536 bytes"},
	} {
		code, out := postPush(t, h.httpBase, "", tc.body)
		require.Equal(t, tc.code, code, "%.200s: %v", tc.body, out)
		require.Contains(t, out["error"], tc.want)
	}
	require.Len(t, logRows(t, h.dataRoot, "driver_status"), 2, "a refused push applies nothing")

	resp, err := http.Get(h.httpBase + "/v1/push")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestPushWithoutPusher(t *testing.T) {
	h := startPushServer(t, Config{}, false)
	_, err := h.client.Push(context.Background(), &servingv1.PushRequest{Source: "driver_app",
		Columns: statusColumns([]int64{1001}, []bool{true}, []float64{0.5}, []time.Time{pushAt})})
	require.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "this server takes no pushes: it was built without a Pusher")
	code, out := postPush(t, h.httpBase, "", `{"source": "driver_app", "rows": []}`)
	require.Equal(t, http.StatusNotImplemented, code)
	require.Contains(t, out["error"], "this server takes no pushes")
}

func TestPushAuthAndMetrics(t *testing.T) {
	m := NewMetrics()
	h := startPushServer(t, Config{AuthToken: "s3cret", Metrics: m}, true)
	ctx := context.Background()
	req := &servingv1.PushRequest{Source: "driver_app", Columns: statusColumns([]int64{1001}, []bool{true}, []float64{0.5}, []time.Time{pushAt})}
	_, err := h.client.Push(ctx, req)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	_, err = h.client.Push(authed, req)
	require.NoError(t, err)
	req.Source = "nope"
	_, err = h.client.Push(authed, req)
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	body := `{"source": "driver_app", "rows": [{"driver_id": 1002, "available": false, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}]}`
	code, _ := postPush(t, h.httpBase, "", body)
	require.Equal(t, http.StatusUnauthorized, code)
	code, out := postPush(t, h.httpBase, "s3cret", body)
	require.Equal(t, http.StatusOK, code, "%v", out)
	code, _ = postPush(t, h.httpBase, "s3cret", `{"source": "nope", "rows": []}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Len(t, logRows(t, h.dataRoot, "driver_status"), 2)

	mreq, err := http.NewRequest(http.MethodGet, h.httpBase+"/metrics", nil)
	require.NoError(t, err)
	mreq.Header.Set("Authorization", "Bearer s3cret") // metrics need the token too
	resp, err := http.DefaultClient.Do(mreq)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	text := b.String()
	for _, line := range []string{
		`quiver_request_duration_seconds_count{code="OK",method="/quiver.serving.v1.Serving/Push",surface="grpc"} 1`,
		`quiver_request_duration_seconds_count{code="InvalidArgument",method="/quiver.serving.v1.Serving/Push",surface="grpc"} 1`,
		`quiver_request_duration_seconds_count{code="Unauthenticated",method="/quiver.serving.v1.Serving/Push",surface="grpc"} 1`,
		`quiver_request_duration_seconds_count{code="200",method="/v1/push",surface="http"} 1`,
		`quiver_request_duration_seconds_count{code="400",method="/v1/push",surface="http"} 1`,
		`quiver_request_duration_seconds_count{code="401",method="/v1/push",surface="http"} 1`,
	} {
		require.Contains(t, text, line)
	}
}

// TestPushColumns converts every type, nulls and lists; errors name the
// column, the row and the element.
func TestPushColumns(t *testing.T) {
	fields := []*registry.Field{
		{Name: "i32", Type: registry.ValueType{Elem: registry.Int32}},
		{Name: "i64", Type: registry.ValueType{Elem: registry.Int64}},
		{Name: "f64", Type: registry.ValueType{Elem: registry.Float64}},
		{Name: "s", Type: registry.ValueType{Elem: registry.String}},
		{Name: "b", Type: registry.ValueType{Elem: registry.Bytes}},
		{Name: "emb", Type: registry.ValueType{List: true, Elem: registry.Float32}},
		{Name: "tags", Type: registry.ValueType{List: true, Elem: registry.String}},
	}
	cols := func() map[string]*servingv1.Values {
		return map[string]*servingv1.Values{
			"i32":  {Int64Values: []int64{7, 0}},
			"i64":  {Int32Values: []int32{-1, 2}},
			"f64":  {Int64Values: []int64{3, 4}},
			"s":    {StringValues: []string{"a", ""}},
			"b":    {BytesValues: [][]byte{{1}, nil}},
			"emb":  {ListValues: []*servingv1.Values{{DoubleValues: []float64{0.5, 1}}, {}}},
			"tags": {ListValues: []*servingv1.Values{{}, {StringValues: []string{"x"}}}},
		}
	}
	rows, err := pushColumns("src", fields, cols(), map[string]*servingv1.NullMask{"s": {Null: []bool{false, true}}, "b": {Null: []bool{false, true}}}, 10)
	require.NoError(t, err)
	require.Equal(t, [][]any{
		{int32(7), int64(-1), float64(3), "a", []byte{1}, []any{float32(0.5), float32(1)}, []any{}},
		{int32(0), int64(2), float64(4), nil, nil, []any{}, []any{"x"}},
	}, rows)

	for _, tc := range []struct {
		name string
		col  *servingv1.Values
		want string
	}{
		{"i32", &servingv1.Values{Int64Values: []int64{1 << 40, 0}}, "column i32 row 0: 1099511627776 does not fit int32"},
		{"emb", &servingv1.Values{ListValues: []*servingv1.Values{{}, {StringValues: []string{"x"}}}}, "column emb row 1: want float_values or double_values (float32), got string_values"},
		{"emb", &servingv1.Values{ListValues: []*servingv1.Values{{}, {DoubleValues: []float64{1, 1e300}}}}, "column emb row 1: element 1: 1e+300 does not fit float32"},
		{"emb", &servingv1.Values{FloatValues: []float32{1, 2}}, "column emb: want list_values (list<float32>), got float_values"},
		{"s", &servingv1.Values{ListValues: []*servingv1.Values{{}, {}}}, "column s: want string_values (string), got list_values"},
	} {
		c := cols()
		c[tc.name] = tc.col
		_, err := pushColumns("src", fields, c, nil, 10)
		require.EqualError(t, err, tc.want)
	}
	_, err = pushColumns("src", fields, cols(), nil, 1)
	require.EqualError(t, err, "2 rows; the limit is 1 per push")
}

// FuzzDecodePushRequest: the push body decoder never panics, every error
// it returns refuses the push, and what it accepts names a source and
// holds rows of valid JSON.
func FuzzDecodePushRequest(f *testing.F) {
	for _, seed := range []string{
		`{"source": "driver_app", "rows": [{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}]}`,
		`{"source": "driver_app", "rows": [{"driver_id": 1, "available": null, "battery": 1, "ts": 1795428000000}, {}]}`,
		`{"source": "driver_app", "rows": []}`, `{"source": "driver_app"}`, `{"source": ""}`,
		`{"source": "driver_app", "rows": [1, "x", null, [], {"a": {"b": [1e999]}}]}`,
		`{"source": "driver_app", "rows": {}}`, `{"source": 1}`, `{"source": "s", "extra": true}`,
		`{"source": "s", "rows": []} {}`, `[]`, `{`, ``, `null`,
		`{"source": "a", "source": "b", "rows": []}`, `{"source": "s", "rows": [{"x": 1, "x": 2}]}`,
		`{"source": "s", "rows": [{"ts": "-0249-01-01T00:00:00Z", "n": 123456789012345678901234567890}, {"ts": "10000-01-01T00:00:00Z"}]}`,
		`{"source": "s", "rows": [` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `]}`,
		"{\"source\": \"s\xff\", \"rows\": [{\"\xfe\": \"\xc0\"}]}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodePushRequest(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, stream.ErrInvalidPush) {
				t.Fatalf("error does not refuse the push: %v", err)
			}
			return
		}
		if req.Source == "" {
			t.Fatal("accepted a push without a source")
		}
		for i, row := range req.Rows {
			if !json.Valid(row) {
				t.Fatalf("row %d is not valid JSON: %q", i, row)
			}
		}
	})
}

// pushFuzzFields is a push source's schema with every scalar type and
// lists.
var pushFuzzFields = []*registry.Field{
	{Name: "i32", Type: registry.ValueType{Elem: registry.Int32}},
	{Name: "i64", Type: registry.ValueType{Elem: registry.Int64}},
	{Name: "f32", Type: registry.ValueType{Elem: registry.Float32}},
	{Name: "f64", Type: registry.ValueType{Elem: registry.Float64}},
	{Name: "ok", Type: registry.ValueType{Elem: registry.Bool}},
	{Name: "s", Type: registry.ValueType{Elem: registry.String}},
	{Name: "b", Type: registry.ValueType{Elem: registry.Bytes}},
	{Name: "ts", Type: registry.ValueType{Elem: registry.Timestamp}},
	{Name: "emb", Type: registry.ValueType{List: true, Elem: registry.Float32}},
	{Name: "tags", Type: registry.ValueType{List: true, Elem: registry.String}},
	{Name: "times", Type: registry.ValueType{List: true, Elem: registry.Timestamp}},
}

// goType is the Go type pushColumns gives values of a scalar type.
var goType = map[registry.Scalar]string{
	registry.Int32: "int32", registry.Int64: "int64", registry.Float32: "float32", registry.Float64: "float64",
	registry.Bool: "bool", registry.String: "string", registry.Bytes: "[]uint8", registry.Timestamp: "time.Time",
}

// FuzzPushColumns: the conversion of a gRPC push's columns never panics on
// any message; every error names a column (or the row limit); what it
// accepts is a row per entry, a value per field of the field's Go type
// (or nil), and the same rows again when written back as columns.
func FuzzPushColumns(f *testing.F) {
	year := func(y int) int64 { return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() }
	full := func() map[string]*servingv1.Values {
		return map[string]*servingv1.Values{
			"i32": {Int64Values: []int64{7, math.MaxInt32}}, "i64": {Int32Values: []int32{-1, 2}},
			"f32": {DoubleValues: []float64{0.5, math.Inf(-1)}}, "f64": {Int64Values: []int64{math.MaxInt64, 4}},
			"ok": {BoolValues: []bool{true, false}}, "s": {StringValues: []string{"a", ""}}, "b": {BytesValues: [][]byte{{0xff}, nil}},
			"ts":    {TimestampValues: []int64{year(2026), year(-249)}},
			"emb":   {ListValues: []*servingv1.Values{{DoubleValues: []float64{0.5, 1}}, {}}},
			"tags":  {ListValues: []*servingv1.Values{{}, {StringValues: []string{"x", "y"}}}},
			"times": {ListValues: []*servingv1.Values{{TimestampValues: []int64{year(10000), math.MinInt64}}, {}}},
		}
	}
	with := func(name string, v *servingv1.Values) map[string]*servingv1.Values {
		c := full()
		c[name] = v
		return c
	}
	for _, req := range []*servingv1.PushRequest{
		{Source: "src", Columns: full()},
		{Source: "src", Columns: full(), Nulls: map[string]*servingv1.NullMask{"s": {Null: []bool{false, true}}, "emb": {Null: []bool{true, true}}}},
		{Source: "src", Columns: with("s", &servingv1.Values{}), Nulls: map[string]*servingv1.NullMask{"s": {Null: []bool{true, true}}}},
		{Source: "src", Columns: with("i32", &servingv1.Values{Int64Values: []int64{1 << 40, 0}})},
		{Source: "src", Columns: with("f32", &servingv1.Values{DoubleValues: []float64{1e300, 0}})},
		{Source: "src", Columns: with("ok", &servingv1.Values{BoolValues: []bool{true}, Int32Values: []int32{1}})},
		{Source: "src", Columns: with("tags", &servingv1.Values{ListValues: []*servingv1.Values{{}, {ListValues: []*servingv1.Values{{}}}}})},
		{Source: "src", Columns: with("emb", &servingv1.Values{ListValues: []*servingv1.Values{{DoubleValues: []float64{1}, FloatValues: []float32{1}}, {}}})},
		{Source: "src", Columns: with("nope", &servingv1.Values{})},
		{Source: "src", Columns: full(), Nulls: map[string]*servingv1.NullMask{"ts": {Null: []bool{true}}, "x": {}}},
		{Source: "src", Columns: with("i64", &servingv1.Values{Int64Values: make([]int64, 51)})},
		{Source: "src", Columns: map[string]*servingv1.Values{}},
	} {
		b, err := proto.Marshal(req)
		require.NoError(f, err)
		f.Add(b)
	}
	const maxRows = 50
	f.Fuzz(func(t *testing.T, data []byte) {
		var req servingv1.PushRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		rows, err := pushColumns("src", pushFuzzFields, req.GetColumns(), req.GetNulls(), maxRows)
		if err != nil {
			msg := err.Error()
			for _, prefix := range []string{"column ", "missing column ", "unknown column ", "nulls name unknown column "} {
				if strings.HasPrefix(msg, prefix) {
					return
				}
			}
			if !strings.HasSuffix(msg, fmt.Sprintf("rows; the limit is %d per push", maxRows)) {
				t.Fatalf("error names no column: %v", err)
			}
			return
		}
		if len(rows) == 0 {
			return
		}
		require.LessOrEqual(t, len(rows), maxRows)
		for i, row := range rows {
			require.Len(t, row, len(pushFuzzFields))
			for j, v := range row {
				f := pushFuzzFields[j]
				switch x := v.(type) {
				case nil:
				case []any:
					require.True(t, f.Type.List, "row %d %s: a list for %s", i, f.Name, f.Type)
					for _, e := range x {
						require.Equal(t, goType[f.Type.Elem], fmt.Sprintf("%T", e), "row %d %s", i, f.Name)
					}
				default:
					require.False(t, f.Type.List, "row %d %s: %T for %s", i, f.Name, v, f.Type)
					require.Equal(t, goType[f.Type.Elem], fmt.Sprintf("%T", v), "row %d %s", i, f.Name)
				}
			}
		}
		// Written back as canonical columns (nulls as masks over zero
		// values), the rows convert to themselves.
		cols, nulls := map[string]*servingv1.Values{}, map[string]*servingv1.NullMask{}
		for j, f := range pushFuzzFields {
			vals := make([]any, len(rows))
			mask := make([]bool, len(rows))
			var zero any
			for i := range rows {
				if vals[i] = rows[i][j]; vals[i] == nil {
					mask[i] = true
				} else {
					zero = reflect.Zero(reflect.TypeOf(vals[i])).Interface()
				}
			}
			if zero == nil { // all null
				cols[f.Name], nulls[f.Name] = &servingv1.Values{}, &servingv1.NullMask{Null: mask}
				continue
			}
			for i := range vals {
				if mask[i] {
					vals[i], nulls[f.Name] = zero, &servingv1.NullMask{Null: mask}
				}
			}
			col, ok := protoValues(vals)
			require.True(t, ok, "column %s: %v", f.Name, vals)
			cols[f.Name] = col
		}
		again, err := pushColumns("src", pushFuzzFields, cols, nulls, maxRows)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("%#v", rows), fmt.Sprintf("%#v", again))
	})
}
