package server

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/quiverdata/quiver/wire"
	"github.com/stretchr/testify/require"
)

// TestFlightExchangeDescriptorFirst: a client that opens DoExchange with a
// message holding only the descriptor, then sends the schema and batches
// without it (what Arrow C++ and pyarrow do), gets its answer, for both
// kinds of exchange; so does one that sends a message holding only app
// metadata between batches.
func TestFlightExchangeDescriptorFirst(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	ents := entityRows(3)
	defer ents.Release()
	for _, kind := range []string{wire.FlightTrainingSet, wire.FlightOnlineFeatures} {
		cmd, err := json.Marshal(wire.FlightCommand{Kind: kind, Features: []string{"stats:rate"}})
		require.NoError(t, err)
		stream, err := ft.client.DoExchange(context.Background())
		require.NoError(t, err)
		require.NoError(t, stream.Send(&flight.FlightData{FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd}}))
		w := flight.NewRecordWriter(stream, ipc.WithSchema(ents.Schema()))
		require.NoError(t, w.Write(ents))
		require.NoError(t, stream.Send(&flight.FlightData{AppMetadata: []byte("between batches")}))
		require.NoError(t, w.Write(ents))
		require.NoError(t, w.Close())
		require.NoError(t, stream.CloseSend())
		rd, err := flight.NewRecordReader(stream)
		require.NoError(t, err, kind)
		var rows int64
		for rd.Next() {
			rows += rd.RecordBatch().NumRows()
		}
		require.NoError(t, rd.Err(), kind)
		rd.Release()
		require.EqualValues(t, 6, rows, kind)
	}
}
