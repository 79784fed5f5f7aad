package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
