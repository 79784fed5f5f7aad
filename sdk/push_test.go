package sdk

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/quiverdata/quiver/internal/testutil/logtest"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
)

// logRows counts the rows of a view's offline log.
var logRows = logtest.Rows

func TestClientPush(t *testing.T) {
	ctx := context.Background()
	repo, snap := quickstartRepo(t)
	store, err := online.Open(ctx, repo.Config)
	require.NoError(t, err)
	defer store.Close()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	lookup := online.NewLookup(store, online.LookupOptions{Now: func() time.Time { return at.Add(2 * time.Minute) }})
	serving := server.NewServing(lookup, func() *registry.Snapshot { return snap }, server.Limits{}, "test")
	applier, err := stream.NewApplier(snap.Defs, store, repo.Config.DataRoot(), nil, nil)
	require.NoError(t, err)
	serving.SetPusher(applier)
	srv, err := server.New(server.Config{GRPCAddr: "127.0.0.1:0", AuthToken: "t"}, serving, func(context.Context) error { return nil })
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	c, err := Dial(srv.GRPCAddr().String(), Options{Token: "t"})
	require.NoError(t, err)
	defer c.Close()

	// Plain Go values: an int driver id, a float64 battery for a float32
	// field, a nil availability.
	n, err := c.Push(ctx, "driver_app", []map[string]any{
		{"driver_id": 1001, "available": true, "battery": 0.5, "ts": at},
		{"driver_id": int64(1001), "available": false, "battery": float32(0.25), "ts": at.Add(time.Minute)},
		{"driver_id": int32(1002), "available": nil, "battery": 1, "ts": at.Add(time.Minute)},
	})
	require.NoError(t, err)
	require.Equal(t, 3, n)

	got, err := c.OnlineFeatures(ctx, Request{Entities: map[string]any{"driver_id": []int64{1001, 1002}},
		Features: []string{"driver_status:*", "driver_pings:*"}})
	require.NoError(t, err)
	for name, want := range map[string][]any{
		"available": {false, nil}, "battery": {float32(0.25), float32(1)},
		"pings_10m": {int64(2), int64(1)}, "min_battery_1h": {float32(0.25), float32(1)},
	} {
		require.Equal(t, want, []any{got.Value(name, 0), got.Value(name, 1)}, name)
	}
	require.Equal(t, online.NullValue, got.Status("available", 1))
	require.Equal(t, 3, logRows(t, repo.Config.DataRoot(), "driver_status"))
	require.Equal(t, 3, logRows(t, repo.Config.DataRoot(), "driver_pings"))

	for _, tc := range []struct {
		rows []map[string]any
		code codes.Code
		want string
	}{
		{[]map[string]any{{"driver_id": 1, "available": true, "battery": 0.5, "ts": at}, {"driver_id": 2, "available": true, "ts": at}},
			codes.OK, "push driver_app: row 1 has no battery (give nil for null)"},
		{[]map[string]any{{"driver_id": 1, "available": true, "battery": 0.5, "ts": at}, {"driver_id": "2", "available": true, "battery": 0.5, "ts": at}},
			codes.OK, "push driver_app: column driver_id: row 0 is int, row 1 is string"},
		{[]map[string]any{{"driver_id": 1, "available": true, "battery": 0.5, "ts": at, "speed": 3.5}},
			codes.InvalidArgument, `unknown column "speed"`},
		{[]map[string]any{{"driver_id": 1, "available": "yes", "battery": 0.5, "ts": at}},
			codes.InvalidArgument, "column available: want bool_values (bool), got string_values"},
		{[]map[string]any{{"driver_id": nil, "available": true, "battery": 0.5, "ts": at}},
			codes.InvalidArgument, "row 0: field driver_id: is null"},
	} {
		_, err := c.Push(ctx, "driver_app", tc.rows)
		require.ErrorContains(t, err, tc.want)
		if tc.code != codes.OK {
			require.Equal(t, tc.code, status.Code(err), "%v", err)
		}
	}
	require.Equal(t, 3, logRows(t, repo.Config.DataRoot(), "driver_status"), "a refused push applies nothing")
}

func TestEmbeddedPush(t *testing.T) {
	ctx := context.Background()
	repo, _ := quickstartRepo(t)
	emb, err := OpenEmbedded(ctx, repo.Dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, emb.Close()) }()

	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	n, err := emb.Push(ctx, "driver_app", []map[string]any{
		{"driver_id": 1001, "available": true, "battery": float32(0.5), "ts": at},
		{"driver_id": 1002, "available": nil, "battery": 0.75, "ts": at},
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	got, err := emb.OnlineFeatures(ctx, Request{Entities: map[string]any{"driver_id": []int64{1001, 1002}},
		Features: []string{"driver_status:*", "driver_pings:pings_10m"}})
	require.NoError(t, err)
	require.Equal(t, true, got.Value("available", 0))
	require.Equal(t, online.NullValue, got.Status("available", 1))
	require.Equal(t, float32(0.75), got.Value("battery", 1))
	require.Equal(t, at, got.EventTime("battery", 0))
	require.Equal(t, int64(1), got.Value("pings_10m", 0))
	require.Equal(t, 2, logRows(t, repo.Config.DataRoot(), "driver_status"))

	_, err = emb.Push(ctx, "driver_app", []map[string]any{{"driver_id": 1001, "available": true, "ts": at}})
	require.ErrorContains(t, err, "row 0: field battery: is missing")
	require.True(t, errors.Is(err, stream.ErrInvalidPush), err)
	_, err = emb.Push(ctx, "driver_app", []map[string]any{{"driver_id": 1001, "available": true, "battery": math.NaN(), "ts": at}})
	require.ErrorContains(t, err, "push driver_app: row 0: json: unsupported value: NaN")
	_, err = emb.Push(ctx, "trips", nil)
	require.ErrorContains(t, err, "source trips is a kafka source")
	require.Equal(t, 2, logRows(t, repo.Config.DataRoot(), "driver_status"))
}

// TestPushRequest: Go values become one typed column each, with nulls.
func TestPushRequest(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	req, err := pushRequest("src", []map[string]any{
		{"i": 1, "f": float32(0.5), "mix": 1, "s": "a", "b": []byte{1}, "t": at, "emb": []float32{1, 2}, "tags": []any{"x"}, "none": nil},
		{"i": int64(2), "f": nil, "mix": 0.25, "s": nil, "b": nil, "t": nil, "emb": nil, "tags": []string{}, "none": nil},
	})
	require.NoError(t, err)
	want := &servingv1.PushRequest{Source: "src",
		Columns: map[string]*servingv1.Values{
			"i":    {Int64Values: []int64{1, 2}},
			"f":    {FloatValues: []float32{0.5, 0}},
			"mix":  {DoubleValues: []float64{1, 0.25}},
			"s":    {StringValues: []string{"a", ""}},
			"b":    {BytesValues: [][]byte{{1}, nil}},
			"t":    {TimestampValues: []int64{at.UnixMicro(), 0}},
			"emb":  {ListValues: []*servingv1.Values{{FloatValues: []float32{1, 2}}, {}}},
			"tags": {ListValues: []*servingv1.Values{{StringValues: []string{"x"}}, {StringValues: []string{}}}},
			"none": {},
		},
		Nulls: map[string]*servingv1.NullMask{
			"f": {Null: []bool{false, true}}, "s": {Null: []bool{false, true}}, "b": {Null: []bool{false, true}},
			"t": {Null: []bool{false, true}}, "emb": {Null: []bool{false, true}}, "none": {Null: []bool{true, true}},
		},
	}
	require.True(t, proto.Equal(want, req), "got %v", req)

	for _, tc := range []struct {
		rows []map[string]any
		want string
	}{
		{[]map[string]any{{"x": struct{}{}}}, "push src: column x: row 0: struct {} is not a push value"},
		{[]map[string]any{{"x": true}, {"x": 1}}, "push src: column x: row 0 is bool, row 1 is int"},
		{[]map[string]any{{"x": []any{1, nil}}}, "push src: column x: row 0: list element 1 is nil; lists hold no nulls"},
		{[]map[string]any{{"x": [][]float32{{1}}}}, "push src: column x: row 0: a list of lists is not a push value"},
		{[]map[string]any{{"x": uint64(math.MaxUint64)}}, "push src: column x: row 0: 18446744073709551615 does not fit int64"},
		{[]map[string]any{{"x": 1}, {}}, "push src: row 1 has no x (give nil for null)"},
	} {
		_, err := pushRequest("src", tc.rows)
		require.EqualError(t, err, tc.want)
	}
}
