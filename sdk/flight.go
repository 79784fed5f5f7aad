package sdk

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/quiverdata/quiver/internal/refreader"
	"github.com/quiverdata/quiver/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// FlightClient fetches training sets and batch online features over
// Arrow Flight. Any Flight client can do the same with the JSON commands
// documented in docs/flight.md; this one returns array.RecordReader.
type FlightClient struct {
	client flight.Client
	token  string
}

// flightMaxMessage matches the server's bound on one Flight message.
const flightMaxMessage = 64 << 20

// DialFlight connects to a Quiver Flight server at addr (host:port).
func DialFlight(addr string, opts Options) (*FlightClient, error) {
	dial := opts.DialOptions
	if dial == nil {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	dial = append(dial, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(flightMaxMessage), grpc.MaxCallSendMsgSize(flightMaxMessage)))
	c, err := flight.NewClientWithMiddleware(addr, nil, nil, dial...)
	if err != nil {
		return nil, fmt.Errorf("dial Flight %s: %w", addr, err)
	}
	return &FlightClient{client: c, token: opts.Token}, nil
}

// Close closes the connection.
func (c *FlightClient) Close() error { return c.client.Close() }

// TrainingSetRequest names the features of a training set or of a batch
// of online lookups.
type TrainingSetRequest struct {
	Features         []string
	FeatureService   string
	FullFeatureNames bool
	// TimestampColumn is the entity table's event time (default
	// event_timestamp); JoinKeyMap maps join keys to entity columns.
	TimestampColumn string
	JoinKeyMap      map[string]string
}

func (r TrainingSetRequest) command(kind, entities string) []byte {
	b, err := json.Marshal(wire.FlightCommand{Kind: kind, Features: r.Features, FeatureService: r.FeatureService,
		FullFeatureNames: r.FullFeatureNames, TimestampColumn: r.TimestampColumn, JoinKeyMap: r.JoinKeyMap, Entities: entities})
	if err != nil {
		panic(err) // a struct of strings always marshals
	}
	return b
}

func (c *FlightClient) ctx(ctx context.Context) context.Context {
	if c.token != "" {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	return ctx
}

// TrainingSetFromPath streams the training set of an entity table that
// the server reads itself: a Parquet path or glob within its data root.
// The caller releases the reader; cancelling ctx stops the server's query.
func (c *FlightClient) TrainingSetFromPath(ctx context.Context, entities string, req TrainingSetRequest) (array.RecordReader, error) {
	stream, err := c.client.DoGet(c.ctx(ctx), &flight.Ticket{Ticket: req.command(wire.FlightTrainingSet, entities)})
	if err != nil {
		return nil, err
	}
	return recordReader(stream)
}

// Dataset streams a saved training set (an Arrow IPC file or Parquet
// within the server's data root, written by quiver training-set --out) as
// it was stored: no join runs, so it arrives at the transport's speed.
// The caller releases the reader.
func (c *FlightClient) Dataset(ctx context.Context, path string) (array.RecordReader, error) {
	cmd, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightDataset, Path: path})
	if err != nil {
		return nil, err
	}
	stream, err := c.client.DoGet(c.ctx(ctx), &flight.Ticket{Ticket: cmd})
	if err != nil {
		return nil, err
	}
	return recordReader(stream)
}

// TrainingSet streams the entity table to the server and the training set
// back. The entity reader is read to its end (and not released).
func (c *FlightClient) TrainingSet(ctx context.Context, entities array.RecordReader, req TrainingSetRequest) (array.RecordReader, error) {
	return c.exchange(ctx, entities, req.command(wire.FlightTrainingSet, ""))
}

// OnlineFeatures streams entity batches (join keys, and request fields of
// on-demand views) and returns, per batch, the entity columns followed by
// the online values (null unless present).
func (c *FlightClient) OnlineFeatures(ctx context.Context, entities array.RecordReader, req TrainingSetRequest) (array.RecordReader, error) {
	return c.exchange(ctx, entities, req.command(wire.FlightOnlineFeatures, ""))
}

func (c *FlightClient) exchange(ctx context.Context, entities array.RecordReader, cmd []byte) (array.RecordReader, error) {
	ctx, cancel := context.WithCancel(c.ctx(ctx))
	stream, err := c.client.DoExchange(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	// Send the entities while the caller reads: the server may answer
	// before it has read them all (online features, batch by batch).
	sent := make(chan error, 1)
	go func() {
		w := flight.NewRecordWriter(stream, ipc.WithSchema(entities.Schema()))
		w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
		var err error
		for err == nil && entities.Next() {
			err = w.Write(entities.RecordBatch())
		}
		if err == nil {
			err = entities.Err()
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if cerr := stream.CloseSend(); err == nil {
			err = cerr
		}
		sent <- err
	}()
	rr, err := recordReader(stream)
	if err != nil {
		cancel()
		<-sent
		return nil, err
	}
	er := &exchangeReader{Reader: rr, sent: sent}
	// The last Release (the caller's, or a Retain's) ends the exchange.
	return refreader.New(er, func() error {
		cancel()
		er.wait()
		return nil
	}), nil
}

func recordReader(stream flight.DataStreamReader) (*flight.Reader, error) {
	return flight.NewRecordReader(stream)
}

// exchangeReader reports a failed send of the entities once the answer
// ends; the refreader around it stops the exchange on its last Release.
type exchangeReader struct {
	*flight.Reader
	sent chan error
	err  error
	done bool
}

func (r *exchangeReader) Schema() *arrow.Schema { return r.Reader.Schema() }

func (r *exchangeReader) Next() bool {
	if r.Reader.Next() {
		return true
	}
	r.wait()
	return false
}

// wait waits for the sender once and keeps its error.
func (r *exchangeReader) wait() {
	if !r.done {
		r.done = true
		r.err = <-r.sent
	}
}

func (r *exchangeReader) Err() error {
	if err := r.Reader.Err(); err != nil {
		return err
	}
	return r.err
}
