package sparkconnect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/quiverdata/quiver/internal/sparkconnect/pb"
)

// Query runs a SQL query and streams its result: the reader hands on each
// Arrow batch as the server sends it (Spark sends up to 10,000 rows a
// batch, spark.connect.grpc.arrow.maxBatchSize permitting), so a large
// result is never held whole. Query returns once the first batch (or the
// end) has arrived, so the schema is known and an error in the statement
// is Query's error, not the reader's.
//
// Cancelling ctx, or releasing the reader before its end, interrupts the
// query on the server (an InterruptRequest for its operation id): the
// server's cores are free again at once, not when the query would have
// ended. The caller must Release the reader.
func (s *Session) Query(ctx context.Context, query string) (array.RecordReader, error) {
	plan := &pb.Plan{OpType: &pb.Plan_Root{Root: &pb.Relation{
		RelType: &pb.Relation_Sql{Sql: &pb.SQL{Query: query}},
	}}}
	r, err := s.execute(ctx, "query", plan)
	if err != nil {
		return nil, err
	}
	if !r.fill() && r.err != nil {
		err := r.err
		r.Release()
		return nil, err
	}
	if r.schema == nil {
		r.schema = arrow.NewSchema(nil, nil)
	}
	return r, nil
}

// Exec runs a SQL statement that returns no rows (CREATE, INSERT, SET,
// DROP, ...) and waits for it to finish. A cancelled ctx interrupts it, as
// for [Session.Query].
func (s *Session) Exec(ctx context.Context, statement string) error {
	return s.command(ctx, "exec", &pb.Command{CommandType: &pb.Command_SqlCommand{SqlCommand: &pb.SqlCommand{
		Input: &pb.Relation{RelType: &pb.Relation_Sql{Sql: &pb.SQL{Query: statement}}},
	}}})
}

// command executes a command plan and drains its responses.
func (s *Session) command(ctx context.Context, op string, cmd *pb.Command) error {
	r, err := s.execute(ctx, op, &pb.Plan{OpType: &pb.Plan_Command{Command: cmd}})
	if err != nil {
		return err
	}
	defer r.Release()
	for r.Next() {
	}
	return r.Err()
}

// execute starts an ExecutePlan call with an operation id of its own.
func (s *Session) execute(ctx context.Context, op string, plan *pb.Plan) (*reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("spark connect %s: %w", op, context.Cause(ctx))
	}
	opID := uuid.NewString()
	streamCtx, cancel := context.WithCancel(ctx)
	stream, err := s.client.ExecutePlan(streamCtx, &pb.ExecutePlanRequest{
		SessionId:   s.id,
		UserContext: s.user,
		OperationId: new(opID),
		Plan:        plan,
		ClientType:  new(s.agent),
	})
	if err != nil {
		cancel()
		return nil, newError(op, err, ctx)
	}
	r := &reader{s: s, op: op, opID: opID, ctx: ctx, stream: stream, cancel: cancel, mem: memory.DefaultAllocator}
	r.refs.Store(1)
	// A context that ends while the operation runs interrupts it: ending
	// the call alone leaves the query running on the server.
	r.stopAfter = context.AfterFunc(ctx, r.interrupt)
	return r, nil
}

// reader is the array.RecordReader of one ExecutePlan call.
type reader struct {
	refs      atomic.Int64
	s         *Session
	op, opID  string
	ctx       context.Context
	stream    grpc.ServerStreamingClient[pb.ExecutePlanResponse]
	cancel    context.CancelFunc
	stopAfter func() bool
	mem       memory.Allocator

	schema  *arrow.Schema
	pending []arrow.RecordBatch
	cur     arrow.RecordBatch
	chunks  []byte // a batch that arrives in chunks, so far
	done    bool   // the stream has ended, well or not
	err     error

	interruptOnce sync.Once
}

var _ array.RecordReader = (*reader)(nil)

func (r *reader) Schema() *arrow.Schema { return r.schema }

func (r *reader) Retain() { r.refs.Add(1) }

// Release, at the last reference, ends the call; a query not yet read to
// its end is interrupted on the server.
func (r *reader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	r.stopAfter()
	if !r.done {
		r.interrupt()
		r.done = true
	}
	r.cancel()
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	for _, rec := range r.pending {
		rec.Release()
	}
	r.pending = nil
}

func (r *reader) interrupt() {
	r.interruptOnce.Do(func() { _ = r.s.interruptOperation(r.opID) })
}

func (r *reader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if len(r.pending) == 0 && !r.fill() {
		return false
	}
	r.cur = r.pending[0]
	r.pending = r.pending[1:]
	return true
}

func (r *reader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record is RecordBatch.
//
// Deprecated: use RecordBatch.
func (r *reader) Record() arrow.RecordBatch { return r.cur }

func (r *reader) Err() error { return r.err }

// fill reads responses until at least one record is pending, and reports
// whether one is; at the end of the stream, or on an error (r.err), it
// returns false.
func (r *reader) fill() bool {
	for len(r.pending) == 0 {
		if r.done {
			return false
		}
		resp, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			r.finish(nil)
			return false
		}
		if err != nil {
			r.finish(newError(r.op, err, r.ctx))
			return false
		}
		if b := resp.GetArrowBatch(); b != nil {
			if err := r.batch(b); err != nil {
				r.finish(fmt.Errorf("spark connect %s: %w", r.op, err))
				return false
			}
		}
	}
	return true
}

func (r *reader) finish(err error) {
	r.done = true
	r.err = err
	r.stopAfter()
	var se *Error
	if err != nil && !(errors.As(err, &se) && se.Class != "") {
		// The call has failed, and not by the server's report of the
		// query's failure: the query may still run (a context, a message
		// too large, a malformed batch).
		r.interrupt()
	}
	r.cancel()
}

// batch decodes one ArrowBatch response: an Arrow IPC stream with its own
// schema and one or more record batches, perhaps sent in chunks.
func (r *reader) batch(b *pb.ExecutePlanResponse_ArrowBatch) error {
	data := b.GetData()
	if n := b.GetNumChunksInBatch(); n > 1 {
		r.chunks = append(r.chunks, data...)
		if b.GetChunkIndex() < n-1 {
			return nil
		}
		data, r.chunks = r.chunks, nil
	}
	rd, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(r.mem))
	if err != nil {
		return fmt.Errorf("decode arrow batch: %w", err)
	}
	defer rd.Release()
	if r.schema == nil {
		r.schema = rd.Schema()
	} else if !r.schema.Equal(rd.Schema()) {
		return fmt.Errorf("arrow batch schema %s differs from the first batch's %s", rd.Schema(), r.schema)
	}
	var rows int64
	for rd.Next() {
		rec := rd.RecordBatch()
		rows += rec.NumRows()
		if rec.NumRows() == 0 {
			continue
		}
		rec.Retain()
		r.pending = append(r.pending, rec)
	}
	if err := rd.Err(); err != nil {
		return fmt.Errorf("decode arrow batch: %w", err)
	}
	if rows != b.GetRowCount() {
		return fmt.Errorf("arrow batch has %d rows, the server says %d", rows, b.GetRowCount())
	}
	return nil
}
