package sparkconnect

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/quiverdata/quiver/internal/sparkconnect/pb"
)

// CreateView uploads a client-side Arrow table as the session's temporary
// view name, replacing one of that name. The rows go as Arrow IPC streams
// in LocalRelations of about Options.ChunkBytes each, one request per
// chunk, so no request nears the server's message limit
// (spark.connect.grpc.maxInboundMessageSize, 128 MiB by default); a table
// of more than one chunk becomes views name__part0, name__part1, ... and
// name, their UNION ALL in upload order. The rows live in the driver's
// memory: this is for entity tables of up to a few million rows; larger
// ones belong on shared storage as Parquet. Arrow types map as Spark
// reads them: timestamp[us, tz] is TIMESTAMP, timestamp[us] TIMESTAMP_NTZ.
// The name must be a plain identifier (letters, digits, underscores).
func (s *Session) CreateView(ctx context.Context, name string, rr array.RecordReader) error {
	if !plainIdent(name) {
		return fmt.Errorf("spark connect create view %q: the name must be letters, digits and underscores, not starting with a digit", name)
	}
	op := "create view " + name
	up := uploader{s: s, ctx: ctx, op: op, name: name, schema: rr.Schema(), limit: s.chunkBytes}
	for rr.Next() {
		if err := up.add(rr.RecordBatch()); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("spark connect %s: read the table: %w", op, err)
	}
	return up.finish()
}

type uploader struct {
	s      *Session
	ctx    context.Context
	op     string
	name   string
	schema *arrow.Schema
	limit  int

	buf   bytes.Buffer
	w     *ipc.Writer
	parts int
}

// add appends a record to the chunk, in slices small enough that a chunk
// stays near the limit, and sends each full chunk.
func (u *uploader) add(rec arrow.RecordBatch) error {
	n := rec.NumRows()
	if n == 0 {
		return nil
	}
	size := recordBytes(rec)
	step := n
	if size > int64(u.limit)/2 {
		step = max(1, n*int64(u.limit)/2/size)
	}
	for off := int64(0); off < n; off += step {
		part := rec
		if off != 0 || step < n {
			part = rec.NewSlice(off, min(off+step, n))
		}
		err := u.write(part)
		if part != rec {
			part.Release()
		}
		if err != nil {
			return err
		}
		if u.buf.Len() >= u.limit/2 {
			if err := u.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (u *uploader) write(rec arrow.RecordBatch) error {
	if u.w == nil {
		u.w = ipc.NewWriter(&u.buf, ipc.WithSchema(u.schema))
	}
	if err := u.w.Write(rec); err != nil {
		return fmt.Errorf("spark connect %s: encode arrow: %w", u.op, err)
	}
	return nil
}

// flush sends the chunk as view name__partN.
func (u *uploader) flush() error {
	if err := u.w.Close(); err != nil {
		return fmt.Errorf("spark connect %s: encode arrow: %w", u.op, err)
	}
	u.w = nil
	err := u.send(fmt.Sprintf("%s__part%d", u.name, u.parts), u.buf.Bytes())
	u.buf.Reset()
	u.parts++
	return err
}

func (u *uploader) send(view string, data []byte) error {
	return u.s.command(u.ctx, u.op, &pb.Command{CommandType: &pb.Command_CreateDataframeView{
		CreateDataframeView: &pb.CreateDataFrameViewCommand{
			Input: &pb.Relation{RelType: &pb.Relation_LocalRelation{
				LocalRelation: &pb.LocalRelation{Data: data},
			}},
			Name:    view,
			Replace: true,
		},
	}})
}

// finish sends what is left: the whole table as the view itself when it
// is one chunk, else the last part and the union of the parts.
func (u *uploader) finish() error {
	if u.parts == 0 {
		if u.w == nil { // no rows: the schema alone
			u.w = ipc.NewWriter(&u.buf, ipc.WithSchema(u.schema))
		}
		if err := u.w.Close(); err != nil {
			return fmt.Errorf("spark connect %s: encode arrow: %w", u.op, err)
		}
		return u.send(u.name, u.buf.Bytes())
	}
	if u.w != nil {
		if err := u.flush(); err != nil {
			return err
		}
	}
	var q strings.Builder
	fmt.Fprintf(&q, "CREATE OR REPLACE TEMPORARY VIEW `%s` AS ", u.name)
	for i := range u.parts {
		if i > 0 {
			q.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&q, "SELECT * FROM `%s__part%d`", u.name, i)
	}
	return u.s.Exec(u.ctx, q.String())
}

func plainIdent(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// recordBytes is the size of a record's buffers (of the whole arrays, for
// a slice).
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += dataBytes(col.Data())
	}
	return max(n, 1)
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	return n
}
