package ipcguard_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/internal/testutil/ipctest"
)

// fakeStream replays messages as a Flight stream.
type fakeStream struct{ msgs []*flight.FlightData }

func (s *fakeStream) Recv() (*flight.FlightData, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	fd := s.msgs[0]
	s.msgs = s.msgs[1:]
	return fd, nil
}

// decodeStream runs msgs through the guard and the Flight record reader,
// as the server reads a client's stream, and returns the rows read.
func decodeStream(msgs []*flight.FlightData, lim ipcguard.Limits) (rows int64, err error) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	rd, err := flight.NewRecordReader(ipcguard.NewFlightStream(&fakeStream{msgs: msgs}, lim), ipc.WithAllocator(mem))
	if err != nil {
		return 0, err
	}
	defer rd.Release()
	for rd.Next() {
		if err := ipcguard.ValidateRecord(rd.RecordBatch()); err != nil {
			return rows, err
		}
		rows += rd.RecordBatch().NumRows()
	}
	return rows, rd.Err()
}

// decodeFile reads every batch of the file in data as the server serves a
// saved dataset.
func decodeFile(data []byte, lim ipcguard.Limits) (rows int64, err error) {
	r, err := ipcguard.NewFileReader(data, lim, memory.DefaultAllocator)
	if err != nil {
		return 0, err
	}
	defer func() { _ = r.Close() }()
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			return rows, err
		}
		rows += rec.NumRows()
		rec.Release()
	}
	return rows, nil
}

func TestValidStreamAndFileDecode(t *testing.T) {
	a, b := ipctest.Record(t, 3), ipctest.Record(t, 5)
	defer a.Release()
	defer b.Release()
	rows, err := decodeStream(ipctest.Messages(t, a, b), ipcguard.Limits{})
	require.NoError(t, err)
	require.EqualValues(t, 8, rows)
	rows, err = decodeFile(ipctest.File(t, a, b), ipcguard.Limits{})
	require.NoError(t, err)
	require.EqualValues(t, 8, rows)
}

// The schema message whose struct claims 10^9 children is refused before
// arrow-go allocates a slice of them (which would kill the process).
func TestHostileSchemaMessage(t *testing.T) {
	rec := ipctest.Record(t, 1)
	defer rec.Release()
	msgs := ipctest.Messages(t, rec)
	msgs[0].DataHeader = ipctest.HostileSchemaMessage(t)
	_, err := decodeStream(msgs, ipcguard.Limits{})
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
	require.ErrorContains(t, err, "message 1: field 1 children claims 1000000000 entries")
}

// So is a file whose footer's schema does the same.
func TestHostileFooter(t *testing.T) {
	_, err := decodeFile(ipctest.HostileFooterFile(t), ipcguard.Limits{})
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
	require.ErrorContains(t, err, "footer: field 1 children claims 1000000000 entries")
}

// RecordBatchRows reads each batch's rows from its metadata, and refuses
// a batch whose block is gone.
func TestRecordBatchRows(t *testing.T) {
	a, b := ipctest.Record(t, 3), ipctest.Record(t, 5)
	defer a.Release()
	defer b.Release()
	data := ipctest.File(t, a, b, a)
	f, err := ipcguard.CheckFile(data, ipcguard.Limits{})
	require.NoError(t, err)
	var rows []int64
	for i := range f.RecordBatches {
		n, err := f.RecordBatchRows(data, i)
		require.NoError(t, err)
		rows = append(rows, n)
	}
	require.Equal(t, []int64{3, 5, 3}, rows)
	_, err = f.RecordBatchRows(data, 3)
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
	_, err = f.RecordBatchRows(data[:f.RecordBatches[1].Offset+8], 1)
	require.ErrorContains(t, err, "was it truncated?")
}

func TestFileBlocksAndTruncation(t *testing.T) {
	rec := ipctest.Record(t, 4)
	defer rec.Release()
	data := ipctest.File(t, rec, rec)
	f, err := ipcguard.CheckFile(data, ipcguard.Limits{})
	require.NoError(t, err)
	require.Len(t, f.RecordBatches, 2)
	// A block that points past the footer.
	bad := bytes.Clone(data)
	blk := f.RecordBatches[1]
	i := bytes.Index(bad, binary.LittleEndian.AppendUint64(nil, uint64(blk.Offset)))
	require.Positive(t, i)
	binary.LittleEndian.PutUint64(bad[i:], uint64(len(data)))
	_, err = ipcguard.CheckFile(bad, ipcguard.Limits{})
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
	require.ErrorContains(t, err, "record batch block 1")
	// The data shrinks under a checked file: the batch is refused.
	err = f.CheckRecordBatch(data[:blk.Offset+8], 1)
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
	require.ErrorContains(t, err, "was it truncated?")
	// The footer rewritten under a checked file: its batches are refused.
	moved := bytes.Clone(data)
	binary.LittleEndian.PutUint64(moved[i:], uint64(f.RecordBatches[0].Offset))
	err = f.CheckRecordBatch(moved, 0)
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
	require.ErrorContains(t, err, "the footer is not the one checked")
	// Not a file at all.
	_, err = ipcguard.CheckFile([]byte("ARROW1 and then nothing of the sort"), ipcguard.Limits{})
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
}

func TestLimits(t *testing.T) {
	rec := ipctest.Record(t, 100)
	defer rec.Release()
	msgs := ipctest.Messages(t, rec, rec, rec)
	for _, c := range []struct {
		name string
		lim  ipcguard.Limits
		want string
	}{
		{"fields", ipcguard.Limits{MaxFields: 2}, "more than 2 fields (at field 1 child 0)"},
		{"depth", ipcguard.Limits{MaxDepth: 1}, "field 1 child 0 nests 2 deep, over the limit of 1"},
		{"rows", ipcguard.Limits{MaxBatchRows: 99}, "record batch of 100 rows is over the limit of 99"},
		{"message", ipcguard.Limits{MaxMessageBytes: 100}, "message 2: body of"},
		{"stream", ipcguard.Limits{MaxStreamBytes: int64(2*len(msgs[1].DataBody) + 1)}, "message 4: the stream's bodies reach"},
		{"metadata", ipcguard.Limits{MaxMetadataBytes: 16}, "message 1: metadata of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeStream(msgs, c.lim)
			require.ErrorIs(t, err, ipcguard.ErrLimit)
			require.ErrorContains(t, err, c.want)
		})
	}
}

// A compressed buffer claiming a huge uncompressed size is refused before
// arrow-go allocates it.
func TestCompressionBomb(t *testing.T) {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	for i := range 1000 {
		b.Append(int64(i))
	}
	col := b.NewArray()
	b.Release()
	sch := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := array.NewRecordBatch(sch, []arrow.Array{col}, 1000)
	col.Release()
	defer rec.Release()
	c := &collect{}
	w := flight.NewRecordWriter(c, ipc.WithSchema(sch), ipc.WithZstd())
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
	rows, err := decodeStream(c.clone(), ipcguard.Limits{})
	require.NoError(t, err, "a well-formed compressed stream decodes")
	require.EqualValues(t, 1000, rows)

	msgs := c.clone()
	body := msgs[1].DataBody
	// The values buffer is the last non-empty one; its first 8 bytes are
	// its uncompressed length.
	off := bytes.Index(body, binary.LittleEndian.AppendUint64(nil, 8000))
	require.GreaterOrEqual(t, off, 0)
	binary.LittleEndian.PutUint64(body[off:], 1<<50)
	_, err = decodeStream(msgs, ipcguard.Limits{})
	require.ErrorIs(t, err, ipcguard.ErrLimit)
	require.ErrorContains(t, err, "compressed buffers decode to more than")
}

type collect struct{ msgs []*flight.FlightData }

func (c *collect) Send(fd *flight.FlightData) error {
	c.msgs = append(c.msgs, &flight.FlightData{DataHeader: bytes.Clone(fd.DataHeader), DataBody: bytes.Clone(fd.DataBody)})
	return nil
}

func (c *collect) clone() []*flight.FlightData {
	out := make([]*flight.FlightData, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = &flight.FlightData{DataHeader: bytes.Clone(m.DataHeader), DataBody: bytes.Clone(m.DataBody)}
	}
	return out
}

func TestStreamOrder(t *testing.T) {
	rec := ipctest.Record(t, 2)
	defer rec.Release()
	msgs := ipctest.Messages(t, rec)
	s := ipcguard.NewStream(ipcguard.Limits{})
	err := s.Check(msgs[1].DataHeader, msgs[1].DataBody)
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
	require.ErrorContains(t, err, "message 1 is a record batch; a stream starts with its schema")
	require.Error(t, s.Check(nil, nil))
	s = ipcguard.NewStream(ipcguard.Limits{})
	require.NoError(t, s.Check(msgs[0].DataHeader, nil))
	require.ErrorContains(t, s.Check(msgs[0].DataHeader, nil), "second schema")
	require.True(t, ipcguard.IsGuardError(err))
	require.False(t, ipcguard.IsGuardError(errors.New("other")))
}

// A record batch whose array claims more values than its buffers hold is
// refused after decoding.
func TestValidateRecord(t *testing.T) {
	b := array.NewStringBuilder(memory.DefaultAllocator)
	b.AppendValues([]string{"a", "bb", "ccc"}, nil)
	col := b.NewArray()
	b.Release()
	defer col.Release()
	d := col.Data()
	// Offsets that run past the data buffer.
	offs := d.Buffers()[1].Bytes()
	binary.LittleEndian.PutUint32(offs[12:], 1000)
	sch := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	rec := array.NewRecordBatch(sch, []arrow.Array{col}, 3)
	defer rec.Release()
	err := ipcguard.ValidateRecord(rec)
	require.ErrorIs(t, err, ipcguard.ErrInvalid)
	require.ErrorContains(t, err, `column 0 ("s")`)
}
