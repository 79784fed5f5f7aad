package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/registry"
)

// TestKafkaOptionsExpandsBrokerDefaults: a source's brokers take
// ${VAR:-default} as quiver.yaml's values do; an unset variable without a
// default is an error naming it, not an empty broker list.
func TestKafkaOptionsExpandsBrokerDefaults(t *testing.T) {
	group, dlq := "", ".dlq"
	flush, session := time.Second, time.Second
	sf := streamFlags{group: &group, flush: &flush, dlq: &dlq, session: &session}
	defs := func(brokers string) *registry.Definitions {
		return &registry.Definitions{Project: "p", Sources: []*registry.Source{{Name: "trips", Kind: registry.SourceKafka, Topic: "trips", Brokers: []string{brokers}}}}
	}
	log := slog.New(slog.DiscardHandler)
	t.Setenv("QUIVER_TEST_BROKER", "k9:9092")

	opts, err := kafkaOptions(&registry.Config{}, defs("${QUIVER_TEST_UNSET:-k1:9092,k2:9092}"), "", sf, log)
	require.NoError(t, err)
	require.Equal(t, []string{"k1:9092", "k2:9092"}, opts.Brokers)
	opts, err = kafkaOptions(&registry.Config{}, defs("${QUIVER_TEST_BROKER:-k1:9092}"), "", sf, log)
	require.NoError(t, err)
	require.Equal(t, []string{"k9:9092"}, opts.Brokers)
	_, err = kafkaOptions(&registry.Config{}, defs("${QUIVER_TEST_UNSET}"), "", sf, log)
	require.ErrorContains(t, err, "source trips: brokers: \"${QUIVER_TEST_UNSET}\": environment variable QUIVER_TEST_UNSET is not set")
}

// TestStreamReadyz: ready while no partition is stalled; 503 naming the
// stalled partitions, what fails and for how long, while any is.
func TestStreamReadyz(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var stalls []stream.Stall
	h := streamReadyz(func() []stream.Stall { return stalls }, func() time.Time { return now })
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	stalls = []stream.Stall{{Topic: "trips", Partition: 2, Op: "write offline log", Since: now.Add(-90 * time.Second)}}
	code, body = get()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "partition trips/2 stalled: write offline log failing for 1m30s\n", body)
}
