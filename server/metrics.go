package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/online"
)

// Metrics are the server's Prometheus metrics, on a registry of their own
// (served at GET /metrics), never the global one.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.HistogramVec
	storeOps *prometheus.HistogramVec
	evalErrs *prometheus.CounterVec
}

// latencyBuckets span 25 µs to 2.5 s.
var latencyBuckets = prometheus.ExponentialBuckets(25e-6, 2, 17)

// NewMetrics creates the metrics on a new registry, with Go runtime and
// process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quiver_request_duration_seconds", Help: "Request latency by surface (grpc, http, flight), method and status code.",
			Buckets: latencyBuckets,
		}, []string{"surface", "method", "code"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quiver_online_store_duration_seconds", Help: "Online store calls (each read is one round trip per node) by operation and outcome.",
			Buckets: latencyBuckets,
		}, []string{"op", "outcome"}),
		evalErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quiver_on_demand_evaluation_errors_total", Help: "On-demand feature values whose expression failed at run time (status EVALUATION_ERROR), by feature.",
		}, []string{"feature"}),
	}
	reg.MustRegister(append(m.Collectors(), prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))...)
	return m
}

// Collectors returns the server's own metrics (not the Go and process
// collectors), for programs that list what Quiver exports: a vector with
// no series yet gathers nothing, but describes itself.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.storeOps, m.evalErrs}
}

// Registerer is the metrics' registry, for other components of the same
// process (the stream materializer in quiver dev) to add theirs.
func (m *Metrics) Registerer() prometheus.Registerer { return m.registry }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// observeUnary times unary calls of a surface (grpc or flight).
func (m *Metrics) observeUnary(surface string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.requests.WithLabelValues(surface, info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// observeStream times streaming calls of a surface.
func (m *Metrics) observeStream(surface string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.requests.WithLabelValues(surface, info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return err
	}
}

// observeHTTP times HTTP requests, labelled by method(r): the route, so
// that clients cannot grow the label set.
func (m *Metrics) observeHTTP(method func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		m.requests.WithLabelValues("http", method(r), strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// countEvaluationErrors adds a response's failed on-demand values.
func (m *Metrics) countEvaluationErrors(resp *online.Response) {
	for i := range resp.Features {
		fv := &resp.Features[i]
		n := 0
		for _, st := range fv.Statuses {
			if st == online.EvaluationError {
				n++
			}
		}
		if n > 0 {
			m.evalErrs.WithLabelValues(fv.View + ":" + fv.Feature).Add(float64(n))
		}
	}
}

// InstrumentStore wraps a store so that its calls are timed in m.
func (m *Metrics) InstrumentStore(s online.Store) online.Store {
	return &instrumentedStore{Store: s, m: m}
}

type instrumentedStore struct {
	online.Store
	m *Metrics
}

func (s *instrumentedStore) observe(op string, start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.m.storeOps.WithLabelValues(op, outcome).Observe(time.Since(start).Seconds())
}

func (s *instrumentedStore) Read(ctx context.Context, keys []online.Key) ([][]byte, error) {
	start := time.Now()
	out, err := s.Store.Read(ctx, keys)
	s.observe("read", start, err)
	return out, err
}

func (s *instrumentedStore) Write(ctx context.Context, rows []online.Row, opts online.WriteOptions) (online.WriteResult, error) {
	start := time.Now()
	res, err := s.Store.Write(ctx, rows, opts)
	s.observe("write", start, err)
	return res, err
}
