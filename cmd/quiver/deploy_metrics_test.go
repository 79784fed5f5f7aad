package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
)

var updateMetrics = flag.Bool("update", false, "rewrite deploy/metrics.txt from the metrics Quiver exports")

// metricsList is the golden list of every metric Quiver exports, which
// the deploy module's tests check the alert rules and the dashboard
// against.
const metricsList = "../../deploy/metrics.txt"

// TestMetricsList compares deploy/metrics.txt with the metrics of quiver
// serve (server.NewMetrics) and quiver stream (stream.NewMetrics beside
// the Go and process collectors, as cmdStream registers them). Regenerate
// it with go test ./cmd/quiver -run TestMetricsList -update.
func TestMetricsList(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the process collector's metrics differ by platform; the list is Linux's, where Quiver's images run")
	}
	types := map[string]string{}
	srv := server.NewMetrics()
	collect(t, srv.Registerer().(prometheus.Gatherer), types)
	for _, c := range srv.Collectors() {
		typeCollector(t, c, types)
	}

	rec := &recordingRegisterer{Registry: prometheus.NewRegistry()}
	rec.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	stream.NewMetrics(rec)
	collect(t, rec.Registry, types)
	for _, c := range rec.collectors {
		typeCollector(t, c, types)
	}

	var lines []string
	for name, typ := range types {
		require.NotEmpty(t, typ, "metric %s: no type found (a collector the test does not know)", name)
		lines = append(lines, name+" "+typ)
	}
	sort.Strings(lines)
	got := strings.Join(lines, "\n") + "\n"
	if *updateMetrics {
		require.NoError(t, os.WriteFile(metricsList, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(metricsList)
	require.NoError(t, err, "run go test ./cmd/quiver -run TestMetricsList -update")
	require.Equal(t, string(want), got, "deploy/metrics.txt is stale: go test ./cmd/quiver -run TestMetricsList -update, then check deploy/ (cd deploy && go test ./...)")
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// collect adds every metric the gatherer's collectors describe, with the
// type of those that gather (the Go and process collectors always do; a
// vector without children gathers nothing, so typeCollector types those).
func collect(t *testing.T, g prometheus.Gatherer, types map[string]string) {
	t.Helper()
	reg, ok := g.(prometheus.Collector)
	require.True(t, ok, "a registry is a collector")
	descs := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		m := fqNameRE.FindStringSubmatch(d.String())
		require.NotNil(t, m, "desc %s has no fqName", d)
		if _, ok := types[m[1]]; !ok {
			types[m[1]] = ""
		}
	}
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		types[mf.GetName()] = strings.ToLower(mf.GetType().String())
	}
}

// typeCollector records the type of one of Quiver's own collectors.
func typeCollector(t *testing.T, c prometheus.Collector, types map[string]string) {
	t.Helper()
	var typ string
	switch c.(type) {
	case *prometheus.CounterVec, prometheus.Counter:
		typ = "counter"
	case *prometheus.GaugeVec, prometheus.Gauge:
		typ = "gauge"
	case *prometheus.HistogramVec, prometheus.Histogram:
		typ = "histogram"
	case *prometheus.SummaryVec, prometheus.Summary:
		typ = "summary"
	default:
		return // the Go and process collectors: typed by collect
	}
	descs := make(chan *prometheus.Desc, 16)
	c.Describe(descs)
	close(descs)
	for d := range descs {
		m := fqNameRE.FindStringSubmatch(d.String())
		require.NotNil(t, m, "desc %s has no fqName", d)
		types[m[1]] = typ
	}
}

// recordingRegisterer keeps the collectors registered through it.
type recordingRegisterer struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(fmt.Sprintf("register %T: %v", c, err))
		}
	}
}

// TestDeployConfigs loads the Kubernetes manifests' quiver.yaml files
// (deploy/base and the dev overlay) and their feature definitions the
// way the pods do, so that they cannot drift from Quiver's schema.
func TestDeployConfigs(t *testing.T) {
	env := map[string]string{
		"QUIVER_REGISTRY":   "s3://quiver-features/registry",
		"QUIVER_DATA_ROOT":  "s3://quiver-features/data",
		"QUIVER_REDIS_ADDR": "redis:6379",
		"KAFKA_BROKERS":     "kafka-0:9092,kafka-1:9092",
		"AWS_REGION":        "eu-west-1",
		"QUIVER_TOKEN":      "a-token",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	base, err := registry.LoadConfig("../../deploy/base", registry.LoadOptions{LookupEnv: lookup})
	require.NoError(t, err)
	require.NoError(t, base.Require("registry", "offline", "online", "kafka", "serve", "storage"))
	require.Equal(t, registry.OnlineRedis, base.Online.Type)
	require.Equal(t, "redis:6379", base.Online.Addr)
	require.Equal(t, []string{"kafka-0:9092", "kafka-1:9092"}, base.Kafka.Brokers)
	require.Equal(t, "a-token", base.Serve.AuthToken)
	require.Equal(t, 10*time.Second, base.Serve.ShutdownTimeout.Std(), "deploy/base/serve.yaml's terminationGracePeriodSeconds counts on it")
	require.Equal(t, "s3://quiver-features/registry", base.RegistryPath())
	for _, p := range []string{base.Offline.DuckDB.TempDirectory, base.Offline.Cache.Dir, base.Offline.Compact.Dir} {
		require.True(t, filepath.IsAbs(p), "%s: the pods' repository directory is read-only, so local paths must be absolute", p)
	}

	// Without the token, serve refuses to start: the base's empty Secret
	// fails closed.
	delete(env, "QUIVER_TOKEN")
	noToken, err := registry.LoadConfig("../../deploy/base", registry.LoadOptions{LookupEnv: lookup})
	require.NoError(t, err)
	require.ErrorContains(t, noToken.Require("serve"), "QUIVER_TOKEN is not set")

	dev, err := registry.LoadConfig("../../deploy/overlays/dev", registry.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	require.NoError(t, dev.Require("registry", "offline", "online", "serve"))
	require.Equal(t, registry.OnlineEmbedded, dev.Online.Type)

	// The definitions the apply Job mounts beside quiver.yaml.
	dir := t.TempDir()
	cfgData, err := os.ReadFile("../../deploy/base/quiver.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "quiver.yaml"), cfgData, 0o644))
	files, err := filepath.Glob("../../deploy/base/definitions/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644))
	}
	env["QUIVER_TOKEN"] = "a-token"
	repo, err := registry.LoadRepo(dir, registry.LoadOptions{LookupEnv: lookup})
	require.NoError(t, err)
	require.NotEmpty(t, repo.Defs.FeatureViews)
}

// TestDeployDefinitionsAreTheQuickstarts: the apply Job's example
// definitions (deploy/base/definitions, inside the kustomization because
// kustomize reads no files outside it) are the quickstart's, byte for
// byte, so that the example cannot drift from what quiver init writes.
func TestDeployDefinitionsAreTheQuickstarts(t *testing.T) {
	files, err := filepath.Glob("../../deploy/base/definitions/*.yaml")
	require.NoError(t, err)
	want, err := filepath.Glob("../../internal/quickstart/features/*.yaml")
	require.NoError(t, err)
	require.Equal(t, len(want), len(files), "deploy/base/definitions holds every quickstart file")
	for _, f := range files {
		got, err := os.ReadFile(f)
		require.NoError(t, err)
		exp, err := os.ReadFile(filepath.Join("../../internal/quickstart/features", filepath.Base(f)))
		require.NoError(t, err, "%s is not a quickstart file", f)
		require.Equal(t, string(exp), string(got), "%s differs from internal/quickstart/features: copy it again", f)
	}
}
