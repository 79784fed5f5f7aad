package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/internal/testutil/redistest"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	feastservingpb "github.com/quiverdata/quiver/proto/feast/serving"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/wire"
)

const token = "s3cret"

// dialGRPC opens a plaintext client connection to addr.
func dialGRPC(t *testing.T, addr net.Addr) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, conn.Close()) })
	return conn
}

// TestEverySurfaceNeedsTheToken: with a token configured, every surface
// but the health checks refuses a call without it or with a wrong one,
// and answers with it: gRPC unary and streaming, reflection, every HTTP
// route (unknown ones included) and every Flight RPC.
func TestEverySurfaceNeedsTheToken(t *testing.T) {
	h := startServer(t, embedded(t), Config{AuthToken: token, Metrics: NewMetrics(), FlightAddr: "127.0.0.1:0"})
	bare := context.Background()
	creds := map[string]context.Context{
		"no token":    bare,
		"wrong token": metadata.AppendToOutgoingContext(bare, "authorization", "Bearer wrong"),
		"no bearer":   metadata.AppendToOutgoingContext(bare, "authorization", token),
	}
	authed := metadata.AppendToOutgoingContext(bare, "authorization", "Bearer "+token)
	lookup := &servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:rate"}}
	refl := reflectionpb.NewServerReflectionClient(h.conn)
	fl := flight.NewFlightServiceClient(dialGRPC(t, h.srv.FlightAddr()))
	path := &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"feature_view", "stats"}}

	// Each call returns the call's error: for streams, that of the first
	// receive after the client has sent what it sends.
	calls := map[string]func(ctx context.Context) error{
		"grpc GetOnlineFeatures": func(ctx context.Context) error { _, err := h.client.GetOnlineFeatures(ctx, lookup); return err },
		"grpc GetServerInfo": func(ctx context.Context) error {
			_, err := h.client.GetServerInfo(ctx, &servingv1.GetServerInfoRequest{})
			return err
		},
		"grpc Feast GetOnlineFeatures": func(ctx context.Context) error {
			_, err := feastservingpb.NewServingServiceClient(h.conn).GetOnlineFeatures(ctx, &feastservingpb.GetOnlineFeaturesRequest{
				Kind: &feastservingpb.GetOnlineFeaturesRequest_FeatureService{FeatureService: "svc"}})
			return err
		},
		"grpc Feast GetFeastServingInfo": func(ctx context.Context) error {
			_, err := feastservingpb.NewServingServiceClient(h.conn).GetFeastServingInfo(ctx, &feastservingpb.GetFeastServingInfoRequest{})
			return err
		},
		"grpc reflection": func(ctx context.Context) error {
			st, err := refl.ServerReflectionInfo(ctx)
			if err != nil {
				return err
			}
			if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"flight Handshake": func(ctx context.Context) error {
			st, err := fl.Handshake(ctx)
			if err != nil {
				return err
			}
			if err := st.CloseSend(); err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"flight ListFlights": func(ctx context.Context) error {
			st, err := fl.ListFlights(ctx, &flight.Criteria{})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"flight GetFlightInfo": func(ctx context.Context) error { _, err := fl.GetFlightInfo(ctx, path); return err },
		"flight GetSchema":     func(ctx context.Context) error { _, err := fl.GetSchema(ctx, path); return err },
		"flight PollFlightInfo": func(ctx context.Context) error {
			_, err := fl.PollFlightInfo(ctx, path)
			return err
		},
		"flight DoGet": func(ctx context.Context) error {
			st, err := fl.DoGet(ctx, &flight.Ticket{Ticket: []byte(`{"kind": "dataset", "path": "none.arrow"}`)})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"flight DoPut": func(ctx context.Context) error {
			st, err := fl.DoPut(ctx)
			if err != nil {
				return err
			}
			if err := st.CloseSend(); err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"flight DoExchange": func(ctx context.Context) error {
			st, err := fl.DoExchange(ctx)
			if err != nil {
				return err
			}
			if err := st.CloseSend(); err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"flight DoAction": func(ctx context.Context) error {
			st, err := fl.DoAction(ctx, &flight.Action{Type: "nope"})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"flight ListActions": func(ctx context.Context) error {
			st, err := fl.ListActions(ctx, &flight.Empty{})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
	}
	for name, call := range calls {
		for how, ctx := range creds {
			err := call(ctx)
			require.Equal(t, codes.Unauthenticated, status.Code(err), "%s with %s: %v", name, how, err)
		}
		// With the token the call gets past authentication: whatever it
		// answers, it is not Unauthenticated.
		err := call(authed)
		require.NotEqual(t, codes.Unauthenticated, status.Code(err), "%s with the token: %v", name, err)
	}

	// Health checks need no token, on the gRPC and the Flight server.
	for _, conn := range []*grpc.ClientConn{h.conn, dialGRPC(t, h.srv.FlightAddr())} {
		for how, ctx := range creds {
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			require.NoError(t, err, "health Check with %s", how)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
			w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
			require.NoError(t, err)
			got, err := w.Recv()
			require.NoError(t, err, "health Watch with %s", how)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, got.Status)
		}
	}

	// HTTP: every route, and a path that is none.
	httpCall := func(method, path, auth string) *http.Response {
		req, err := http.NewRequest(method, h.httpBase+path, strings.NewReader(`{}`))
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return resp
	}
	for _, rt := range []struct {
		method, path string
		open         bool
	}{
		{"POST", "/v1/online-features", false},
		{"POST", "/v1/push", false},
		{"POST", "/get-online-features", false},
		{"POST", "/push", false},
		{"GET", "/metrics", false},
		{"GET", "/nope", false},
		{"GET", "/healthz", true},
		{"GET", "/readyz", true},
	} {
		for _, auth := range []string{"", "Bearer wrong", token} {
			resp := httpCall(rt.method, rt.path, auth)
			if rt.open {
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s with %q", rt.method, rt.path, auth)
			} else {
				require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s %s with %q", rt.method, rt.path, auth)
			}
		}
		resp := httpCall(rt.method, rt.path, "Bearer "+token)
		require.NotEqual(t, http.StatusUnauthorized, resp.StatusCode, "%s %s with the token", rt.method, rt.path)
	}
}

// TestHTTPSlowClientIsCutOff: a client that sends its headers and then
// trickles its body is cut off by the read timeout; a keep-alive
// connection that sends nothing more is closed by the idle timeout.
func TestHTTPSlowClientIsCutOff(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	h := startServer(t, embedded(t), Config{ReadTimeout: readTimeout, ReadHeaderTimeout: readTimeout, IdleTimeout: readTimeout})
	addr := h.srv.HTTPAddr().String()
	// The test's own guard, far beyond the server's timeouts: reaching it
	// means the server held the connection.
	guard := 50 * readTimeout

	t.Run("slow body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		const length = 1 << 20
		_, err = fmt.Fprintf(conn, "POST /v1/online-features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", length)
		require.NoError(t, err)
		var sent atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(readTimeout / 20)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
				sent.Add(1)
			}
		}()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
		out, err := io.ReadAll(conn)
		close(stop)
		<-done
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server held a trickling body until the test gave up: %v", err)
		// The answer says what happened, and not with the read error,
		// which names the connection's addresses.
		require.True(t, strings.HasPrefix(string(out), "HTTP/1.1 408 "), "answer: %q", out)
		require.Contains(t, string(out), `{"error":"request body not received within the server's read timeout","code":"DeadlineExceeded"}`)
		require.NotContains(t, string(out), "127.0.0.1")
		require.Less(t, sent.Load(), int64(length), "the body was not complete when the server cut it off")
		require.Positive(t, sent.Load(), "the client did trickle")
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.False(t, resp.Close, "the connection is kept alive")
		_, err = br.ReadByte()
		require.ErrorIs(t, err, io.EOF, "the server closes an idle keep-alive connection")
	})
}

// TestHTTPConnectionLimit: beyond MaxConnections a new connection waits
// until one closes.
func TestHTTPConnectionLimit(t *testing.T) {
	h := startServer(t, embedded(t), Config{MaxConnections: 1})
	addr := h.srv.HTTPAddr().String()
	first, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = io.WriteString(first, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(first), nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.httpBase+"/healthz", nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = get(ctx)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "a second connection is not served while the first is open")
	require.NoError(t, first.Close())
	require.NoError(t, get(context.Background()), "it is once the first closes")
}

// restartRedis starts a plain redis-server on the port a stopped test
// server used.
func restartRedis(t *testing.T, port int) {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // the test is over; the exit status is of no interest
		_ = cmd.Wait()
	})
}

// TestRedisDownFailsFast: with Redis killed, every lookup fails at once
// with UNAVAILABLE (gRPC) and 503 (HTTP), well within the request timeout,
// and no answer, /readyz's included, shows the store's address.
func TestRedisDownFailsFast(t *testing.T) {
	redisSrv := redistest.Start(t)
	store, err := online.OpenRedis(context.Background(), online.RedisOptions{Addr: redisSrv.Addr()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	const requestTimeout = 2 * time.Second
	h := startServer(t, store, Config{RequestTimeout: requestTimeout})
	ctx := context.Background()
	req := &servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:rate"}}
	_, err = h.client.GetOnlineFeatures(ctx, req)
	require.NoError(t, err)

	redisSrv.Stop()
	// A quarter of the request timeout: go-redis's default dial retries
	// and backoffs took about 1.7 s per lookup.
	bound := requestTimeout / 4
	for i := range 5 {
		start := time.Now()
		_, err = h.client.GetOnlineFeatures(ctx, req)
		took := time.Since(start)
		require.Equal(t, codes.Unavailable, status.Code(err), "lookup %d: %v", i, err)
		require.Less(t, took, bound, "lookup %d took %s to fail", i, took)
		require.NotContains(t, err.Error(), redisSrv.Addr(), "errors do not show internal addresses")

		start = time.Now()
		resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json", strings.NewReader(`{"entities": {"driver_id": [1]}, "features": ["stats:rate"]}`))
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		took = time.Since(start)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "HTTP lookup %d: %s", i, body)
		require.Less(t, took, bound, "HTTP lookup %d took %s to fail", i, took)
		require.NotContains(t, string(body), redisSrv.Addr(), "errors do not show internal addresses")
	}
	r, err := http.Get(h.httpBase + "/readyz")
	require.NoError(t, err)
	body, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	require.NoError(t, r.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
	require.NotContains(t, string(body), redisSrv.Addr(), "/readyz does not show internal addresses")
	require.NotContains(t, string(body), strconv.Itoa(redisSrv.Port()))
}

// TestHealthFollowsTheStore: gRPC health answers for the whole server,
// the serving services (Quiver's and Feast's) and Flight, and follows the
// store as /readyz does: NOT_SERVING while Redis is down, SERVING again once it is back.
func TestHealthFollowsTheStore(t *testing.T) {
	redisSrv := redistest.Start(t)
	store, err := online.OpenRedis(context.Background(), online.RedisOptions{Addr: redisSrv.Addr()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	h := startServer(t, store, Config{HealthInterval: 20 * time.Millisecond, FlightAddr: "127.0.0.1:0"})
	services := []string{"", "quiver.serving.v1.Serving", "feast.serving.ServingService", "arrow.flight.protocol.FlightService"}
	clients := []healthpb.HealthClient{healthpb.NewHealthClient(h.conn), healthpb.NewHealthClient(dialGRPC(t, h.srv.FlightAddr()))}
	statusOf := func(c healthpb.HealthClient, svc string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err, "health Check %q", svc)
		return resp.Status
	}
	all := func(want healthpb.HealthCheckResponse_ServingStatus) func() bool {
		return func() bool {
			for _, c := range clients {
				for _, svc := range services {
					if statusOf(c, svc) != want {
						return false
					}
				}
			}
			return true
		}
	}
	ready := func() int {
		r, err := http.Get(h.httpBase + "/readyz")
		require.NoError(t, err)
		require.NoError(t, r.Body.Close())
		return r.StatusCode
	}
	require.True(t, all(healthpb.HealthCheckResponse_SERVING)(), "serving while the store answers")
	require.Equal(t, http.StatusOK, ready())

	redisSrv.Stop()
	require.Eventually(t, all(healthpb.HealthCheckResponse_NOT_SERVING), 10*time.Second, 10*time.Millisecond, "NOT_SERVING while Redis is down")
	require.Equal(t, http.StatusServiceUnavailable, ready())

	restartRedis(t, redisSrv.Port())
	require.Eventually(t, all(healthpb.HealthCheckResponse_SERVING), 10*time.Second, 10*time.Millisecond, "SERVING once Redis is back")
	require.Equal(t, http.StatusOK, ready())
}

// TestErrorMapping: one mapping of core errors for gRPC, Flight and HTTP.
func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
		http int
	}{
		{fmt.Errorf("%w: x", online.ErrInvalidRequest), codes.InvalidArgument, http.StatusBadRequest},
		{fmt.Errorf("%w: x", offline.ErrInvalidRequest), codes.InvalidArgument, http.StatusBadRequest},
		{fmt.Errorf("%w: x", stream.ErrInvalidPush), codes.InvalidArgument, http.StatusBadRequest},
		{fmt.Errorf("%w: x", online.ErrUnavailable), codes.Unavailable, http.StatusServiceUnavailable},
		{fmt.Errorf("lookup: %w", context.DeadlineExceeded), codes.DeadlineExceeded, http.StatusGatewayTimeout},
		{fmt.Errorf("lookup: %w", context.Canceled), codes.Canceled, wire.StatusClientClosedRequest},
		{errNoPusher, codes.Unimplemented, http.StatusNotImplemented},
		{fmt.Errorf("entity stream: %w", ipcguard.ErrLimit), codes.ResourceExhausted, http.StatusTooManyRequests},
		{fmt.Errorf("entity stream: %w", ipcguard.ErrInvalid), codes.InvalidArgument, http.StatusBadRequest},
		{status.Error(codes.NotFound, "no dataset"), codes.NotFound, http.StatusNotFound},
		{status.Error(codes.Unauthenticated, "token"), codes.Unauthenticated, http.StatusUnauthorized},
		{errors.New("disk on fire"), codes.Internal, http.StatusInternalServerError},
	} {
		require.Equal(t, tc.code, status.Code(grpcError(tc.err)), "gRPC and Flight code of %v", tc.err)
		require.Equal(t, tc.http, httpStatus(tc.err), "HTTP status of %v", tc.err)
		switch {
		case tc.code == codes.InvalidArgument && !errors.Is(tc.err, ipcguard.ErrInvalid):
			// The reason alone: the code already says the request is invalid.
			require.Equal(t, "x", status.Convert(grpcError(tc.err)).Message(), "the reason of %v", tc.err)
		case tc.code != codes.Unavailable:
			require.Contains(t, grpcError(tc.err).Error(), status.Convert(tc.err).Message(), "the message is kept")
		}
	}
}

// TestHTTPRouting: unknown paths and methods are JSON errors; 405 says
// which methods the path takes.
func TestHTTPRouting(t *testing.T) {
	h := startServer(t, embedded(t), Config{})
	for _, tc := range []struct {
		method, path string
		code         int
		allow, want  string
	}{
		{"GET", "/nope", http.StatusNotFound, "", "no such path /nope (paths: /get-online-features, /healthz, /push, /readyz, /v1/online-features, /v1/push)"},
		{"GET", "/v1/online-features", http.StatusMethodNotAllowed, "POST", "/v1/online-features takes POST, not GET"},
		{"PUT", "/v1/push", http.StatusMethodNotAllowed, "POST", "/v1/push takes POST, not PUT"},
		{"POST", "/healthz", http.StatusMethodNotAllowed, "GET, HEAD", "/healthz takes GET or HEAD, not POST"},
	} {
		req, err := http.NewRequest(tc.method, h.httpBase+tc.path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var out map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out), "%s %s answers JSON", tc.method, tc.path)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, tc.code, resp.StatusCode, "%s %s", tc.method, tc.path)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Equal(t, tc.allow, resp.Header.Get("Allow"), "%s %s", tc.method, tc.path)
		require.Equal(t, tc.want, out["error"])
		require.Equal(t, map[int]string{http.StatusNotFound: "NotFound", http.StatusMethodNotAllowed: "Unimplemented"}[tc.code], out["code"])
	}
	// A core error carries the code gRPC and Flight answer it with.
	resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json",
		strings.NewReader(`{"entities": {"driver_id": [1]}, "features": ["stats:nope"]}`))
	require.NoError(t, err)
	var body wire.ErrorBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "InvalidArgument", body.Code)
	require.Contains(t, body.Error, "nope")
}

// TestDuplicateJSONKeys: a lookup or push body that gives a key twice is
// refused, naming the key, instead of the last one winning.
func TestDuplicateJSONKeys(t *testing.T) {
	h := startServer(t, embedded(t), Config{})
	for _, tc := range []struct{ body, want string }{
		{`{"entities": {"driver_id": [1]}, "entities": {"driver_id": [2]}, "features": ["stats:rate"]}`, `key "entities" appears twice`},
		{`{"entities": {"driver_id": [1], "driver_id": [2]}, "features": ["stats:rate"]}`, `key "entities.driver_id" appears twice`},
		{`{"entities": {"driver_id": [1]}, "features": ["scores:adjusted"], "request_context": {"surge": [1], "tags": [["a"]], "surge": [2]}}`, `key "request_context.surge" appears twice`},
		{`{"entities": {"driver_id": [1]}, "features": ["stats:rate"], "full_feature_names": true, "full_feature_names": false}`, `key "full_feature_names" appears twice`},
	} {
		resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json", strings.NewReader(tc.body))
		require.NoError(t, err)
		var out map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, tc.body)
		require.Contains(t, out["error"], tc.want)
	}
	// Keys of different objects may repeat.
	_, err := DecodeOnlineFeaturesRequest(strings.NewReader(`{"entities": {"driver_id": [1]}, "features": ["stats:rate"], "request_context": {"driver_id": [1]}}`))
	require.NoError(t, err)

	_, err = DecodePushRequest(strings.NewReader(`{"source": "a", "source": "b", "rows": []}`))
	require.ErrorIs(t, err, stream.ErrInvalidPush)
	require.ErrorContains(t, err, `key "source" appears twice`)
	_, err = DecodePushRequest(strings.NewReader(`{"source": "a", "rows": [{"x": 1}, {"x": 1, "x": 2}]}`))
	require.ErrorContains(t, err, `key "rows[1].x" appears twice`)
}

// TestFlightMetricsSurface: Flight calls, unary ones included, are
// counted as surface="flight".
func TestFlightMetricsSurface(t *testing.T) {
	m := NewMetrics()
	h := startServer(t, embedded(t), Config{Metrics: m, FlightAddr: "127.0.0.1:0"})
	fl := flight.NewFlightServiceClient(dialGRPC(t, h.srv.FlightAddr()))
	_, err := fl.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"feature_view", "stats"}})
	require.NoError(t, err)
	st, err := fl.ListFlights(context.Background(), &flight.Criteria{})
	require.NoError(t, err)
	for {
		if _, err := st.Recv(); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	resp, err := http.Get(h.httpBase + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	text := b.String()
	require.Contains(t, text, `quiver_request_duration_seconds_count{code="OK",method="/arrow.flight.protocol.FlightService/GetFlightInfo",surface="flight"} 1`)
	require.Contains(t, text, `quiver_request_duration_seconds_count{code="OK",method="/arrow.flight.protocol.FlightService/ListFlights",surface="flight"} 1`)
	require.NotContains(t, text, `FlightService/GetFlightInfo",surface="grpc"`)
}

// TestHTTPTimesOutOfRange: a stored time that JSON cannot write (a year
// before 0 or after 9999, from before times were checked at entry) is
// null in the answer; the other entities and values are answered.
func TestHTTPTimesOutOfRange(t *testing.T) {
	h := startServer(t, embedded(t), Config{})
	defs := h.snap.Load().Defs
	c := online.NewCodec(defs.FeatureView("stats"))
	farFuture := time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
	farPast := time.Date(-249, 1, 1, 0, 0, 0, 0, time.UTC)
	row, err := c.Encode(nil, farFuture, []any{float32(0.75), int64(3), nil, farPast})
	require.NoError(t, err)
	_, err = h.store.Write(context.Background(), []online.Row{{Key: online.Key{Project: "srv", View: "stats", Entity: intEntity(t, 5)}, Value: row}}, online.WriteOptions{})
	require.NoError(t, err)

	resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json",
		strings.NewReader(`{"entities": {"driver_id": [1, 5]}, "features": ["stats:rate", "stats:seen"]}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var out OnlineFeaturesResponse
	require.NoError(t, json.Unmarshal(body, &out))
	rate, seen := out.Features[0], out.Features[1]
	require.Equal(t, []any{0.5, 0.75}, rate.Values, "entity 5's value is answered")
	require.NotNil(t, rate.EventTimestamps[0])
	require.True(t, rate.EventTimestamps[0].Equal(now.Add(-time.Minute)))
	require.Nil(t, rate.EventTimestamps[1], "an event time in year 12000 is null")
	require.Equal(t, now.Format(time.RFC3339Nano), seen.Values[0])
	require.Nil(t, seen.Values[1], "a timestamp value in year -249 is null")
}

// TestGRPCStreamLimit: beyond MaxConcurrentStreams a call on the same
// connection waits until a stream ends.
func TestGRPCStreamLimit(t *testing.T) {
	h := startServer(t, embedded(t), Config{MaxConcurrentStreams: 1})
	wctx, stopWatch := context.WithCancel(context.Background())
	w, err := healthpb.NewHealthClient(h.conn).Watch(wctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = w.Recv()
	require.NoError(t, err, "the watch holds the connection's one stream")
	info := func(ctx context.Context) error {
		_, err := h.client.GetServerInfo(ctx, &servingv1.GetServerInfoRequest{})
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = info(ctx)
	cancel()
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "a second call waits while the watch is open: %v", err)
	stopWatch()
	require.NoError(t, info(context.Background()), "it runs once the watch has ended")
}

// TestRequestTimeoutBoundsLookups: a store that stops answering (Redis
// paused) holds a lookup no longer than the server's request timeout,
// over HTTP and gRPC, even for a client that sets no deadline.
func TestRequestTimeoutBoundsLookups(t *testing.T) {
	redisSrv := redistest.Start(t)
	const storeTimeout = 2 * time.Second // the store's own bound, far beyond the request's
	store, err := online.OpenRedis(context.Background(), online.RedisOptions{Addr: redisSrv.Addr(), ReadTimeout: storeTimeout, WriteTimeout: storeTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	const requestTimeout = 200 * time.Millisecond
	h := startServer(t, store, Config{RequestTimeout: requestTimeout})
	req := &servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"stats:rate"}}
	_, err = h.client.GetOnlineFeatures(context.Background(), req)
	require.NoError(t, err)

	// Long enough for both lookups; Redis answers again by itself after.
	_, err = redisSrv.Do("CLIENT", "PAUSE", strconv.Itoa(int(storeTimeout/time.Millisecond)), "ALL")
	require.NoError(t, err)

	start := time.Now()
	resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json", strings.NewReader(`{"entities": {"driver_id": [1]}, "features": ["stats:rate"]}`))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	took := time.Since(start)
	require.Contains(t, []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout}, resp.StatusCode, "%s", body)
	require.Less(t, took, storeTimeout/2, "the HTTP lookup waited %s, beyond the request timeout", took)

	start = time.Now()
	_, err = h.client.GetOnlineFeatures(context.Background(), req)
	took = time.Since(start)
	require.Contains(t, []codes.Code{codes.Unavailable, codes.DeadlineExceeded}, status.Code(err), "%v", err)
	require.Less(t, took, storeTimeout/2, "the gRPC lookup waited %s, beyond the request timeout", took)
}
