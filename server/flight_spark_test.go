//go:build spark

package server

import (
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/testutil/sparktest"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/wire"
)

// Flight over the Spark engine: a training set by DoGet over an entity
// file, by DoExchange over an uploaded Arrow stream, and saved by the
// save action (written by the cluster) and by DoPut, each with the DuckDB
// engine's values and order; Spark's analysis errors are InvalidArgument.
func TestFlightSparkEngine(t *testing.T) {
	srv := sparktest.Start(t)
	duck := startFlightTest(t, Limits{})
	spark := startFlightTestEngine(t, flightDefsYAML, func(o *offline.Options) {
		o.Spark = offline.SparkOptions{Remote: srv.Remote()}
	}, Limits{})
	const rows = 3000
	for _, ft := range []*flightTest{duck, spark} {
		writeParquet(t, filepath.Join(ft.root, "ents.parquet"), labelledEntities(rows))
	}
	get := wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: "ents.parquet"}
	want, err := duck.getColumns(t, ticket(t, get))
	require.NoError(t, err)
	require.Len(t, want["label"], rows)
	got, err := spark.getColumns(t, ticket(t, get))
	require.NoError(t, err)
	require.Equal(t, want, got, "DoGet")

	ents := labelledEntities(rows)
	defer ents.Release()
	require.Equal(t, want, spark.exchangeColumns(t, ents), "DoExchange")

	saved, err := spark.saveAction(t, "ents.parquet", "sets/train.parquet", false)
	require.NoError(t, err)
	spark.checkSaved(t, saved, "sets/train.parquet", rows)
	got, err = spark.getColumns(t, ticket(t, datasetCmd("sets/train.parquet")))
	require.NoError(t, err)
	require.Equal(t, want, got, "the saved set")

	saved, err = spark.put(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Out: "put/set.parquet"}, ents)
	require.NoError(t, err)
	spark.checkSaved(t, saved, "put/set.parquet", rows)
	got, err = spark.getColumns(t, ticket(t, datasetCmd("put/set.parquet")))
	require.NoError(t, err)
	require.Equal(t, want, got, "the set saved by DoPut")

	// An entity file without the join key: the columns Spark describes
	// are checked as DuckDB's are.
	keyless := array.NewRecordBatch(arrow.NewSchema(ents.Schema().Fields()[1:], nil), ents.Columns()[1:], ents.NumRows())
	writeParquet(t, filepath.Join(spark.root, "keyless.parquet"), keyless)
	_, err = spark.getColumns(t, ticket(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: "keyless.parquet"}))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "driver_id")
}
