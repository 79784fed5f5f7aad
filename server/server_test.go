package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/testutil/redistest"
	"github.com/quiverdata/quiver/online"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/wire"
)

const defsYAML = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
sources:
  - {name: s, kind: parquet, path: x.parquet, timestamp_field: ts}
feature_views:
  - name: stats
    entities: [driver]
    source: s
    ttl: 1h
    features: [{name: rate, type: float32}, {name: trips, type: int64}, {name: emb, type: "list<float32>"}, {name: seen, type: timestamp}]
on_demand_feature_views:
  - name: scores
    inputs: [stats]
    request: [{name: surge, type: float64}, {name: tags, type: "list<string>"}]
    features:
      - {name: adjusted, type: float64, expr: "stats.rate * request.surge"}
      - {name: per_trip, type: int64, expr: "100 / stats.trips"}
      - {name: tagged, type: bool, expr: "'vip' in request.tags"}
feature_services:
  - {name: svc, features: ["stats:rate"]}
`

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

type harness struct {
	srv      *Server
	snap     atomic.Pointer[registry.Snapshot]
	client   servingv1.ServingClient
	conn     *grpc.ClientConn
	httpBase string
	store    online.Store
}

func startServer(t *testing.T, store online.Store, cfg Config) *harness {
	t.Helper()
	return start(t, store, cfg, true)
}

// startServerTLS starts a server over TLS with an embedded store; the
// caller dials it.
func startServerTLS(t *testing.T, certFile, keyFile string) *harness {
	t.Helper()
	return start(t, embedded(t), Config{TLSCertFile: certFile, TLSKeyFile: keyFile}, false)
}

func startServerB(b *testing.B) *harness {
	return start(b, embedded(b), Config{}, true)
}

func start(t testing.TB, store online.Store, cfg Config, dial bool) *harness {
	t.Helper()
	defs, errs := registry.ParseDefinitions("srv", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(defsYAML)})
	require.NoError(t, errs.Err())
	h := &harness{store: store}
	h.snap.Store(&registry.Snapshot{Project: "srv", Version: 1, Hash: "sha256:x", Defs: defs})
	var lookupStore = store
	if cfg.Metrics != nil {
		lookupStore = cfg.Metrics.InstrumentStore(store)
	}
	lookup := online.NewLookup(lookupStore, online.LookupOptions{Now: func() time.Time { return now }})
	serving := NewServing(lookup, h.snap.Load, Limits{MaxEntities: 3}, "test")
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.FlightAddr != "" && cfg.Flight == nil {
		// Flight over the same lookup; no offline engine (training sets
		// are not served).
		f, err := NewFlightService(nil, lookup, h.snap.Load, t.TempDir(), Limits{})
		require.NoError(t, err)
		cfg.Flight = f
	}
	srv, err := New(cfg, serving, func(ctx context.Context) error {
		_, err := store.GetMeta(ctx, "srv", "ping")
		return err
	})
	require.NoError(t, err)
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	if dial {
		conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, conn.Close()) })
		h.conn, h.client = conn, servingv1.NewServingClient(conn)
		h.httpBase = "http://" + srv.HTTPAddr().String()
	}

	c := online.NewCodec(defs.FeatureView("stats"))
	row, err := c.Encode(nil, now.Add(-time.Minute), []any{float32(0.5), int64(7), []float32{1, 2}, now})
	require.NoError(t, err)
	old, err := c.Encode(nil, now.Add(-2*time.Hour), []any{float32(0.9), int64(1), nil, nil})
	require.NoError(t, err)
	ent := func(id int64) []byte {
		b, err := online.EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{id})
		require.NoError(t, err)
		return b
	}
	_, err = store.Write(context.Background(), []online.Row{
		{Key: online.Key{Project: "srv", View: "stats", Entity: ent(1)}, Value: row},
		{Key: online.Key{Project: "srv", View: "stats", Entity: ent(2)}, Value: old},
	}, online.WriteOptions{})
	require.NoError(t, err)
	return h
}

func embedded(t testing.TB) online.Store {
	s, err := online.OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestGRPCLookup(t *testing.T) {
	h := startServer(t, embedded(t), Config{})
	ctx := context.Background()
	resp, err := h.client.GetOnlineFeatures(ctx, &servingv1.GetOnlineFeaturesRequest{
		Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1, 2, 3}}},
		Features: []string{"stats:*"},
	})
	require.NoError(t, err)
	require.EqualValues(t, 3, resp.Rows)
	require.EqualValues(t, 1, resp.RegistryVersion)
	rate, trips, emb, seen := resp.Features[0], resp.Features[1], resp.Features[2], resp.Features[3]
	require.Equal(t, "rate", rate.Name)
	require.Equal(t, "float32", rate.Type)
	require.Equal(t, []float32{0.5, 0, 0}, rate.Values.FloatValues)
	require.Equal(t, []servingv1.Status{servingv1.Status_PRESENT, servingv1.Status_OUTSIDE_MAX_AGE, servingv1.Status_NOT_FOUND}, rate.Statuses)
	require.Equal(t, []int64{now.Add(-time.Minute).UnixMicro(), now.Add(-2 * time.Hour).UnixMicro(), 0}, rate.EventTimestamps)
	require.Equal(t, []int64{7, 0, 0}, trips.Values.Int64Values)
	require.Equal(t, "list<float32>", emb.Type)
	require.Equal(t, []float32{1, 2}, emb.Values.ListValues[0].FloatValues)
	require.Empty(t, emb.Values.ListValues[1].FloatValues)
	require.Equal(t, []int64{now.UnixMicro(), 0, 0}, seen.Values.TimestampValues)

	info, err := h.client.GetServerInfo(ctx, &servingv1.GetServerInfoRequest{})
	require.NoError(t, err)
	require.Equal(t, "srv", info.Project)
	require.Equal(t, "test", info.Version)

	// A new registry version takes effect without a restart.
	next := *h.snap.Load()
	next.Version = 2
	h.snap.Store(&next)
	resp, err = h.client.GetOnlineFeatures(ctx, &servingv1.GetOnlineFeaturesRequest{
		Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, FeatureService: "svc", FullFeatureNames: true})
	require.NoError(t, err)
	require.EqualValues(t, 2, resp.RegistryVersion)
	require.Equal(t, "stats__rate", resp.Features[0].Name)

	hc, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.Status)
}

func TestGRPCInvalidArgument(t *testing.T) {
	h := startServer(t, embedded(t), Config{})
	ctx := context.Background()
	for _, tc := range []struct {
		req  *servingv1.GetOnlineFeaturesRequest
		want string
	}{
		{&servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:nope"}}, `view stats has no feature "nope"`},
		{&servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"rider": {Int64Values: []int64{1}}}, Features: []string{"stats:rate"}}, "missing join key driver_id"},
		{&servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {StringValues: []string{"1"}}}, Features: []string{"stats:rate"}}, "is not an int64"},
		{&servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1, 2, 3, 4}}}, Features: []string{"stats:rate"}}, "has 4 rows; the limit is 3"},
		{&servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}, StringValues: []string{"x"}}}, Features: []string{"stats:rate"}}, "both int64 and string"},
	} {
		_, err := h.client.GetOnlineFeatures(ctx, tc.req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		require.ErrorContains(t, err, tc.want)
	}
}

func TestHTTPLookup(t *testing.T) {
	h := startServer(t, embedded(t), Config{})
	post := func(body string) (int, map[string]any) {
		resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	code, out := post(`{"entities": {"driver_id": [1, 2, 3]}, "features": ["stats:rate", "stats:emb"]}`)
	require.Equal(t, http.StatusOK, code, "%v", out)
	feats := out["features"].([]any)
	rate := feats[0].(map[string]any)
	require.Equal(t, []any{0.5, nil, nil}, rate["values"])
	require.Equal(t, []any{"PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"}, rate["statuses"])
	require.Equal(t, now.Add(-time.Minute).Format(time.RFC3339), rate["event_timestamps"].([]any)[0])
	require.Nil(t, rate["event_timestamps"].([]any)[2])
	require.Equal(t, []any{1.0, 2.0}, feats[1].(map[string]any)["values"].([]any)[0])

	for _, tc := range []struct{ body, want string }{
		{`{"entities": {"driver_id": [1]}, "features": ["stats:nope"]}`, `view stats has no feature \"nope\"`},
		{`{"entities": {"driver_id": [1.5]}, "features": ["stats:rate"]}`, "entities.driver_id[0]: 1.5 is not an integer"},
		{`{"entities": {"driver_id": [1]}, "features": ["stats:rate"], "extra": 1}`, `unknown field \"extra\"`},
		{`{"entities": {"driver_id": [1]}`, "unexpected EOF"},
		{`{"entities": {"driver_id": [1, 2]}, "features": ["stats:rate"]} {}`, "more than one JSON value"},
	} {
		code, out := post(tc.body)
		require.Equal(t, http.StatusBadRequest, code, tc.body)
		b, _ := json.Marshal(out)
		require.Contains(t, string(b), tc.want)
	}
	big := `{"entities": {"driver_id": [` + strings.Repeat("1,", 3<<20) + `1]}, "features": ["stats:rate"]}`
	code, _ = post(big)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get(h.httpBase + path)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, want, resp.StatusCode, path)
	}
}

func TestAuth(t *testing.T) {
	h := startServer(t, embedded(t), Config{AuthToken: "s3cret"})
	ctx := context.Background()
	req := &servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:rate"}}
	_, err := h.client.GetOnlineFeatures(ctx, req)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = h.client.GetOnlineFeatures(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong"), req)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = h.client.GetOnlineFeatures(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret"), req)
	require.NoError(t, err)
	_, err = healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "health checks need no token")

	body := `{"entities": {"driver_id": [1]}, "features": ["stats:rate"]}`
	resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	hreq, err := http.NewRequest(http.MethodPost, h.httpBase+"/v1/online-features", bytes.NewBufferString(body))
	require.NoError(t, err)
	hreq.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestRedisBehindTheServer: the same lookups through a real Redis, and
// UNAVAILABLE / 503 when Redis goes away.
func TestRedisBehindTheServer(t *testing.T) {
	redisSrv := redistest.Start(t)
	store, err := online.OpenRedis(context.Background(), online.RedisOptions{Addr: redisSrv.Addr(), DialTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	h := startServer(t, store, Config{})
	ctx := context.Background()
	req := &servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:rate"}}
	resp, err := h.client.GetOnlineFeatures(ctx, req)
	require.NoError(t, err)
	require.Equal(t, []float32{0.5}, resp.Features[0].Values.FloatValues)

	redisSrv.Stop()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = h.client.GetOnlineFeatures(cctx, req)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	r, err := http.Get(h.httpBase + "/readyz")
	require.NoError(t, err)
	require.NoError(t, r.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
}

// FuzzDecodeOnlineFeaturesRequest: the HTTP request decoder never panics
// and every error it returns is an invalid-request error.
func FuzzDecodeOnlineFeaturesRequest(f *testing.F) {
	for _, seed := range []string{
		`{"entities": {"driver_id": [1, 2]}, "features": ["stats:rate"]}`,
		`{"entities": {"rider_id": ["a"]}, "feature_service": "svc", "full_feature_names": true}`,
		`{"entities": {"driver_id": [1.5, "x", null, {}]}}`,
		`{"entities": null}`, `[]`, `{`, ``,
		`{"entities": {"driver_id": [1]}, "features": ["scores:adjusted"], "request_context": {"surge": [1.5], "tags": [["a", 2.5e3]]}}`,
		`{"request_context": {"x": [{"a": 1}, 1e999, "2026-01-01T00:00:00Z"]}}`,
		`{"entities": {"driver_id": [1]}, "entities": {"driver_id": [2]}}`, `{"entities": {"d": [1], "d": [2]}}`,
		`{"entities": {"driver_id": [123456789012345678901234567890, -9223372036854775808, 1e3, -0]}}`,
		`{"request_context": {"at": ["-0249-01-01T00:00:00Z", "10000-01-01T00:00:00Z"], "n": [1e308, -1e-400, 9223372036854775808]}}`,
		`{"request_context": {"deep": [` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `]}}`,
		"{\"entities\": {\"d\xff\": [\"\xfe\"]}, \"features\": [\"v:\xc0\"]}",
		`{"entities": {"driver_id": [1]}} {}`, `{"Entities": {"driver_id": [1]}}`,
	} {
		f.Add([]byte(seed))
	}
	var value func(v any) bool
	value = func(v any) bool {
		switch x := v.(type) {
		case nil, int64, float64, string, bool:
			return true
		case []any:
			for _, e := range x {
				if !value(e) {
					return false
				}
			}
			return true
		}
		return false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeOnlineFeaturesRequest(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, online.ErrInvalidRequest) {
				t.Fatalf("error is not an invalid request: %v", err)
			}
			return
		}
		for name, col := range req.Entities {
			for i, v := range col {
				switch v.(type) {
				case int64, string:
				default:
					t.Fatalf("entities.%s[%d] is %T", name, i, v)
				}
			}
		}
		for name, col := range req.RequestContext {
			for i, v := range col {
				if !value(v) {
					t.Fatalf("request_context.%s[%d] is %T: %v", name, i, v, v)
				}
			}
		}
	})
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	h := startServer(t, embedded(t), Config{Metrics: m})
	ctx := context.Background()
	_, err := h.client.GetOnlineFeatures(ctx, &servingv1.GetOnlineFeaturesRequest{
		Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:rate"}})
	require.NoError(t, err)
	_, err = h.client.GetOnlineFeatures(ctx, &servingv1.GetOnlineFeaturesRequest{
		Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:nope"}})
	require.Error(t, err)
	resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json", strings.NewReader(`{"entities": {"driver_id": [1]}, "features": ["stats:rate"]}`))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())

	resp, err = http.Get(h.httpBase + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	text := b.String()
	require.Contains(t, text, `quiver_request_duration_seconds_count{code="OK",method="/quiver.serving.v1.Serving/GetOnlineFeatures",surface="grpc"} 1`)
	require.Contains(t, text, `quiver_request_duration_seconds_count{code="InvalidArgument",method="/quiver.serving.v1.Serving/GetOnlineFeatures",surface="grpc"} 1`)
	require.Contains(t, text, `quiver_request_duration_seconds_count{code="200",method="/v1/online-features",surface="http"} 1`)
	require.Contains(t, text, `quiver_online_store_duration_seconds_count{op="read",outcome="ok"} 2`, "one store read per successful lookup")
	require.Contains(t, text, "go_goroutines")
}

// TestNoGoroutinesLeft: a server that served requests and shut down leaves
// no goroutines of its own behind (gRPC transports, HTTP connections,
// handlers), whatever the runtime and other libraries run.
func TestNoGoroutinesLeft(t *testing.T) {
	t.Run("serve", func(t *testing.T) {
		h := startServer(t, embedded(t), Config{Metrics: NewMetrics()})
		_, err := h.client.GetOnlineFeatures(context.Background(), &servingv1.GetOnlineFeaturesRequest{
			Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:rate"}})
		require.NoError(t, err)
		resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json", strings.NewReader(`{"entities": {"driver_id": [1]}, "features": ["stats:rate"]}`))
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
	})
	http.DefaultClient.CloseIdleConnections()
	ours := func() []string {
		buf := make([]byte, 1<<20)
		var left []string
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "TestNoGoroutinesLeft") {
				continue
			}
			for _, mark := range []string{"google.golang.org/grpc", "net/http.(*conn)", "net/http.(*persistConn)", "quiverdata/quiver/server"} {
				if strings.Contains(g, mark) {
					left = append(left, g)
					break
				}
			}
		}
		return left
	}
	if !assert.Eventually(t, func() bool { return len(ours()) == 0 }, 10*time.Second, 20*time.Millisecond) {
		t.Logf("goroutines left:\n%s", strings.Join(ours(), "\n\n"))
	}
}

func TestOnDemandOverGRPCAndHTTP(t *testing.T) {
	m := NewMetrics()
	h := startServer(t, embedded(t), Config{Metrics: m})
	ctx := context.Background()
	// Driver 1 is present (trips 7), 2 is beyond the ttl, 3 is unknown.
	resp, err := h.client.GetOnlineFeatures(ctx, &servingv1.GetOnlineFeaturesRequest{
		Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1, 2, 3}}},
		Features: []string{"scores:*"},
		RequestContext: map[string]*servingv1.Values{
			"surge": {DoubleValues: []float64{2, 2, 2}},
			"tags":  {ListValues: []*servingv1.Values{{StringValues: []string{"vip"}}, {}, {StringValues: []string{"x"}}}},
		},
	})
	require.NoError(t, err)
	adjusted, perTrip, tagged := resp.Features[0], resp.Features[1], resp.Features[2]
	require.Equal(t, []float64{1, 0, 0}, adjusted.Values.DoubleValues)
	require.Equal(t, []servingv1.Status{servingv1.Status_PRESENT, servingv1.Status_OUTSIDE_MAX_AGE, servingv1.Status_NOT_FOUND}, adjusted.Statuses)
	require.Equal(t, []int64{14, 0, 0}, perTrip.Values.Int64Values)
	require.Equal(t, []bool{true, false, false}, tagged.Values.BoolValues)
	require.Equal(t, []servingv1.Status{servingv1.Status_PRESENT, servingv1.Status_PRESENT, servingv1.Status_PRESENT}, tagged.Statuses)

	_, err = h.client.GetOnlineFeatures(ctx, &servingv1.GetOnlineFeaturesRequest{
		Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"scores:adjusted"}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, "missing request field surge (float64) of on-demand view scores")
	_, err = h.client.GetOnlineFeatures(ctx, &servingv1.GetOnlineFeaturesRequest{
		Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"scores:adjusted"},
		RequestContext: map[string]*servingv1.Values{"surge": {DoubleValues: []float64{1}, StringValues: []string{"x"}}, "tags": {}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, "request_context.surge: sets more than one typed list")

	// HTTP: the same request in JSON; a zero trip count fails only that value.
	_, err = h.store.Write(ctx, []online.Row{{Key: online.Key{Project: "srv", View: "stats", Entity: intEntity(t, 4)}, Value: encodeStats(t, float32(0.25), int64(0))}}, online.WriteOptions{})
	require.NoError(t, err)
	body := `{"entities": {"driver_id": [1, 4]}, "features": ["scores:adjusted", "scores:per_trip"],
		"request_context": {"surge": [2, 0.5], "tags": [["vip"], []]}}`
	hr, err := http.Post(h.httpBase+"/v1/online-features", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer hr.Body.Close()
	require.Equal(t, http.StatusOK, hr.StatusCode)
	var out OnlineFeaturesResponse
	require.NoError(t, json.NewDecoder(hr.Body).Decode(&out))
	require.Equal(t, []any{1.0, 0.125}, out.Features[0].Values)
	require.Equal(t, []any{14.0, nil}, out.Features[1].Values)
	require.Equal(t, []online.Status{online.Present, online.EvaluationError}, out.Features[1].Statuses)

	mr, err := http.Get(h.httpBase + "/metrics")
	require.NoError(t, err)
	defer mr.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(mr.Body)
	require.NoError(t, err)
	require.Contains(t, b.String(), `quiver_on_demand_evaluation_errors_total{feature="scores:per_trip"} 1`)
}

func intEntity(t *testing.T, id int64) []byte {
	b, err := online.EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{id})
	require.NoError(t, err)
	return b
}

func encodeStats(t *testing.T, rate float32, trips int64) []byte {
	defs, errs := registry.ParseDefinitions("srv", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(defsYAML)})
	require.NoError(t, errs.Err())
	v, err := online.NewCodec(defs.FeatureView("stats")).Encode(nil, now.Add(-time.Minute), []any{rate, trips, nil, nil})
	require.NoError(t, err)
	return v
}

// FuzzDecodeFlightCommand: the Flight command decoder never panics, and
// what it accepts has a known kind with the fields that kind takes.
func FuzzDecodeFlightCommand(f *testing.F) {
	for _, seed := range []string{
		`{"kind": "training_set", "features": ["driver_hourly:conv_rate"], "entities": "driver_labels.parquet"}`,
		`{"kind": "online_features", "feature_service": "ranking_v1", "full_feature_names": true}`,
		`{"kind": "training_set", "join_key_map": {"driver_id": "driver"}, "timestamp_column": "at"}`,
		`{"kind": "nope"}`, `{"kind": "training_set", "extra": 1}`, `{}`, `[]`, `not json`, ``, `{"kind": "training_set"} {}`,
		`{"kind": "dataset", "path": "sets/train.arrow"}`, `{"kind": "dataset"}`, `{"kind": "dataset", "path": "x.parquet", "features": ["v:f"]}`,
		`{"kind": "training_set", "path": "x.arrow"}`,
		`{"kind": "dataset", "kind": "training_set", "path": "x.arrow"}`, `{"kind": "dataset", "path": "a.arrow", "path": "../b.arrow"}`,
		`{"kind": "training_set", "features": ["v:f"], "entities": "linkdir/secre[t].parquet"}`,
		`{"kind": "dataset", "path": "../../etc/passwd"}`, `{"kind": "dataset", "path": "/abs.arrow"}`,
		"{\"kind\": \"dataset\", \"path\": \"\xff.arrow\"}", `{"kind": "training_set", "join_key_map": {"a": "b", "a": "c"}}`,
		`{"kind": "training_set", "features": [` + strings.Repeat(`"v:f",`, 2000) + `"v:f"]}`,
		`{"kind": "training_set", "full_feature_names": 1e999}`,
		`{"kind": "training_set", "features": ["v:f"], "entities": "e.parquet", "out": "sets/t.arrow", "overwrite": true}`,
		`{"kind": "training_set", "features": ["v:f"], "out": "../t.parquet"}`, `{"kind": "training_set", "overwrite": true}`,
		`{"kind": "training_set", "out": 7}`, `{"kind": "online_features", "out": "t.arrow"}`, `{"kind": "dataset", "path": "t.arrow", "out": "u.arrow"}`,
		`{"kind": "dataset", "path": "t.arrow", "range": [0, 4], "version": "1024-1700000000000000000"}`,
		`{"kind": "dataset", "path": "t.arrow", "range": [3, 3]}`, `{"kind": "dataset", "path": "t.arrow", "range": [-1, 2]}`,
		`{"kind": "dataset", "path": "t.arrow", "range": [1]}`, `{"kind": "dataset", "path": "t.arrow", "range": []}`,
		`{"kind": "dataset", "path": "t.arrow", "range": [0, 1, 2]}`, `{"kind": "dataset", "path": "t.arrow", "range": [0, 1e99]}`,
		`{"kind": "dataset", "path": "t.arrow", "range": [0.5, 1]}`, `{"kind": "dataset", "path": "t.arrow", "range": null, "version": ""}`,
		`{"kind": "training_set", "range": [0, 1]}`, `{"kind": "online_features", "version": "1-2"}`,
		`{"kind": "training_set", "features": ["v:f"], "as_of": "2026-11-20T00:00:00Z"}`, `{"kind": "training_set", "as_of": "2026-11-20"}`,
		`{"kind": "training_set", "as_of": "2026-11-20T00:00:00.123456789+05:30"}`, `{"kind": "online_features", "as_of": "2026-11-20T00:00:00Z"}`,
		`{"kind": "dataset", "path": "t.arrow", "as_of": "2026-11-20T00:00:00Z"}`, `{"kind": "training_set", "as_of": 17}`,
		`{"kind": "training_set", "features": ["v:f"], "spine": {"view": "v", "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z", "every": "1h"}}`,
		`{"kind": "training_set", "spine": {"view": "v", "start": "2026-11-01", "end": "2026-11-02T00:00:00Z"}}`,
		`{"kind": "training_set", "entities": "e.parquet", "spine": {"view": "v", "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}}`,
		`{"kind": "online_features", "spine": {"view": "v", "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}}`,
		`{"kind": "dataset", "path": "t.arrow", "spine": {"view": "v"}}`, `{"kind": "training_set", "as_of_column": "event_timestamp"}`,
		`{"kind": "online_features", "as_of_column": "t"}`, `{"kind": "dataset", "path": "t.arrow", "as_of_column": "t"}`, `{"kind": "training_set", "spine": {"view": ""}}`, `{"kind": "training_set", "spine": null}`, `{"kind": ` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := wire.DecodeFlightCommand(b)
		if err != nil {
			return
		}
		switch c.Kind {
		case wire.FlightTrainingSet, wire.FlightOnlineFeatures:
			if c.Path != "" {
				t.Fatalf("accepted a path for kind %q", c.Kind)
			}
			if c.Range != nil || c.Version != "" {
				t.Fatalf("accepted a range or version for kind %q: %+v", c.Kind, c)
			}
			if c.Overwrite && c.Out == "" {
				t.Fatalf("accepted overwrite without out: %+v", c)
			}
			if c.Kind == wire.FlightOnlineFeatures && (c.Out != "" || c.Overwrite || c.AsOf != "" || c.AsOfColumn != "") {
				t.Fatalf("accepted out or as_of for online features: %+v", c)
			}
			if c.AsOf != "" && c.AsOfTime().IsZero() {
				t.Fatalf("accepted as_of %q, which does not parse", c.AsOf)
			}
			if sp := c.Spine; sp != nil {
				_, err1 := time.Parse(time.RFC3339Nano, sp.Start)
				_, err2 := time.Parse(time.RFC3339Nano, sp.End)
				if c.Kind != wire.FlightTrainingSet || c.Entities != "" || sp.View == "" || err1 != nil || err2 != nil {
					t.Fatalf("accepted a spine that is not whole, or beside entities: %+v %+v", c, sp)
				}
			}
		case wire.FlightDataset:
			if c.Path == "" || len(c.Features) > 0 || c.FeatureService != "" || c.Entities != "" || c.Out != "" || c.Overwrite || c.AsOf != "" || c.AsOfColumn != "" || c.Spine != nil {
				t.Fatalf("accepted a dataset command with more than a path: %+v", c)
			}
			if c.Range != nil && len(c.Range) != 2 {
				t.Fatalf("accepted a range of %d numbers", len(c.Range))
			}
		default:
			t.Fatalf("accepted kind %q", c.Kind)
		}
	})
}
