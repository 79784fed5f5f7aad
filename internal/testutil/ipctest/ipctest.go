// Package ipctest builds Arrow IPC input for tests, well-formed and
// hostile: Flight messages as a client sends them, IPC files, and the same
// with one count in their metadata replaced.
package ipctest

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// StructSchema has an int64 column and a struct column "s" of one child.
var StructSchema = arrow.NewSchema([]arrow.Field{
	{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true}), Nullable: true},
}, nil)

// Record returns a batch of StructSchema with rows rows.
func Record(t testing.TB, rows int) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, StructSchema)
	defer b.Release()
	sb := b.Field(1).(*array.StructBuilder)
	for i := range rows {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		sb.Append(true)
		sb.FieldBuilder(0).(*array.Int64Builder).Append(int64(10 * i))
	}
	return b.NewRecordBatch()
}

// Varied returns a batch of rows rows with a dictionary-encoded string
// column, a list of strings and a nullable float column, the shapes whose
// decoding takes the most metadata.
func Varied(t testing.TB, rows int) arrow.RecordBatch {
	t.Helper()
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "tag", Type: dictType},
		{Name: "words", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	for i := range rows {
		require.NoError(t, b.Field(0).(*array.BinaryDictionaryBuilder).AppendString([]string{"a", "b", "c"}[i%3]))
		lb := b.Field(1).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.StringBuilder).AppendValues([]string{"x", "yy"}[:i%3%2+1], nil)
		if i%4 == 3 {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Float64Builder).Append(float64(i))
		}
	}
	return b.NewRecordBatch()
}

// collector is a flight.DataStreamWriter that keeps what it is sent.
type collector struct{ msgs []*flight.FlightData }

func (c *collector) Send(fd *flight.FlightData) error {
	c.msgs = append(c.msgs, &flight.FlightData{DataHeader: bytes.Clone(fd.DataHeader), DataBody: bytes.Clone(fd.DataBody)})
	return nil
}

// Messages returns the Flight messages a client sends for recs (the schema
// message first), as a Flight writer writes them.
func Messages(t testing.TB, recs ...arrow.RecordBatch) []*flight.FlightData {
	t.Helper()
	return MessagesWith(t, nil, recs...)
}

// MessagesWith is Messages with writer options (ipc.WithZstd()).
func MessagesWith(t testing.TB, opts []ipc.Option, recs ...arrow.RecordBatch) []*flight.FlightData {
	t.Helper()
	c := &collector{}
	w := flight.NewRecordWriter(c, append([]ipc.Option{ipc.WithSchema(recs[0].Schema())}, opts...)...)
	for _, r := range recs {
		require.NoError(t, w.Write(r))
	}
	require.NoError(t, w.Close())
	return c.msgs
}

// File returns an Arrow IPC file holding recs.
func File(t testing.TB, recs ...arrow.RecordBatch) []byte {
	t.Helper()
	return FileWith(t, nil, recs...)
}

// FileWith is File with writer options (ipc.WithZstd()).
func FileWith(t testing.TB, opts []ipc.Option, recs ...arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, append([]ipc.Option{ipc.WithSchema(recs[0].Schema())}, opts...)...)
	require.NoError(t, err)
	for _, r := range recs {
		require.NoError(t, w.Write(r))
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// HugeChildren is the count the hostile inputs claim for the children of
// struct field "s": about 10^9, which arrow-go would allocate as fields.
const HugeChildren = 1_000_000_000

// HostileSchemaMessage returns the schema message (a Flight data header) of
// StructSchema with the children of "s" claimed to number HugeChildren.
func HostileSchemaMessage(t testing.TB) []byte {
	t.Helper()
	meta := bytes.Clone(Messages(t, Record(t, 1))[0].DataHeader)
	msg := deref(meta, 0)
	schema := deref(meta, field(meta, msg, 2))
	patchChildren(meta, schema)
	return meta
}

// HostileFooterFile returns an IPC file of StructSchema whose footer claims
// HugeChildren children for "s".
func HostileFooterFile(t testing.TB) []byte {
	t.Helper()
	data := File(t, Record(t, 3))
	flen := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
	footer := data[len(data)-10-flen : len(data)-10]
	root := deref(footer, 0)
	schema := deref(footer, field(footer, root, 1))
	patchChildren(footer, schema)
	return data
}

// patchChildren sets the children count of the schema's field 1 ("s").
func patchChildren(b []byte, schema uint32) {
	fields := deref(b, field(b, schema, 1))
	s := deref(b, fields+4+4*1)
	children := deref(b, field(b, s, 5))
	binary.LittleEndian.PutUint32(b[children:], HugeChildren)
}

// field returns the position of a table's field slot.
func field(b []byte, table uint32, slot int) uint32 {
	vt := uint32(int32(table) - int32(binary.LittleEndian.Uint32(b[table:])))
	fo := binary.LittleEndian.Uint16(b[vt+4+2*uint32(slot):])
	if fo == 0 {
		panic("ipctest: field absent")
	}
	return table + uint32(fo)
}

// deref follows the offset at p.
func deref(b []byte, p uint32) uint32 { return p + binary.LittleEndian.Uint32(b[p:]) }
