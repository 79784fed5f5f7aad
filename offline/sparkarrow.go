package offline

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiverdata/quiver/internal/refreader"
)

// Arrow entity tables meet Spark's types. Spark keeps times in
// microseconds and strings and binaries with 32-bit offsets, while a
// client's table (a pandas DataFrame above all) has nanosecond timestamps
// and may have large strings. Before the upload such columns are
// converted (times truncated to the microsecond, which is what the DuckDB
// engine's CAST to TIMESTAMP does too, so the join is the same), and in
// the result timestamp columns get their own units back, so that both
// engines give the same Arrow schema (DuckDB gives every string column
// back as a string with 32-bit offsets, as Spark does).

// sparkFix is an entity column whose type the upload changed.
type sparkFix struct {
	name string
	orig arrow.DataType
}

// sparkUploadType is the type a column of type t is uploaded as, whether
// that differs from t, and whether results restore t.
func sparkUploadType(t arrow.DataType) (up arrow.DataType, changed, restore bool) {
	switch tt := t.(type) {
	case *arrow.TimestampType:
		if tt.Unit != arrow.Microsecond {
			return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: tt.TimeZone}, true, true
		}
	case *arrow.LargeStringType:
		return arrow.BinaryTypes.String, true, false
	case *arrow.LargeBinaryType:
		return arrow.BinaryTypes.Binary, true, false
	}
	return t, false, false
}

// sparkUploadReader converts in's columns for the upload
// (sparkUploadType), returning the reader, which takes a reference of in
// of its own, and the columns whose types results restore. Without any
// change, it returns in itself, retained.
func sparkUploadReader(in array.RecordReader) (array.RecordReader, []sparkFix) {
	var fixes []sparkFix
	changes := false
	fields := append([]arrow.Field{}, in.Schema().Fields()...)
	for i, f := range fields {
		if t, changed, restore := sparkUploadType(f.Type); changed {
			if restore {
				fixes = append(fixes, sparkFix{name: f.Name, orig: f.Type})
			}
			fields[i].Type = t
			changes = true
		}
	}
	in.Retain()
	if !changes {
		return in, nil
	}
	md := in.Schema().Metadata()
	return convertColumns(in, arrow.NewSchema(fields, &md)), fixes
}

// sparkRestoreReader gives the fixed entity columns of a result their own
// types back. It takes over the reference to in.
func sparkRestoreReader(in array.RecordReader, fixes []sparkFix) array.RecordReader {
	schema := sparkRestoreSchema(in.Schema(), fixes)
	if schema == in.Schema() {
		return in
	}
	out := convertColumns(in, schema)
	in.Release() // out holds its own reference
	return out
}

// sparkRestoreSchema is schema with the fixed columns of their own types.
func sparkRestoreSchema(schema *arrow.Schema, fixes []sparkFix) *arrow.Schema {
	if len(fixes) == 0 {
		return schema
	}
	fields := append([]arrow.Field{}, schema.Fields()...)
	for _, fx := range fixes {
		for i, f := range fields {
			if f.Name == fx.name {
				fields[i].Type = fx.orig
			}
		}
	}
	md := schema.Metadata()
	return arrow.NewSchema(fields, &md)
}

// convertColumns maps in's batches to schema, converting each column
// whose type differs (convertArray). It takes a reference of in.
func convertColumns(in array.RecordReader, schema *arrow.Schema) *refreader.Batches {
	in.Retain()
	return refreader.Map(in, schema, func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		cols := make([]arrow.Array, rec.NumCols())
		for i := range cols {
			want := schema.Field(i).Type
			if arrow.TypeEqual(rec.Column(i).DataType(), want) {
				cols[i] = rec.Column(i)
				cols[i].Retain()
				continue
			}
			c, err := convertArray(rec.Column(i), want)
			if err != nil {
				for _, c := range cols[:i] {
					c.Release()
				}
				return nil, fmt.Errorf("column %s: %w", schema.Field(i).Name, err)
			}
			cols[i] = c
		}
		out := array.NewRecordBatch(schema, cols, rec.NumRows())
		for _, c := range cols {
			c.Release()
		}
		return out, nil
	}, nil)
}

// convertArray converts a between timestamp units (toward coarser units
// by truncation) and between the 32- and 64-bit offset forms of strings
// and binaries.
func convertArray(a arrow.Array, to arrow.DataType) (arrow.Array, error) {
	mem := memory.DefaultAllocator
	switch src := a.(type) {
	case *array.Timestamp:
		tt, ok := to.(*arrow.TimestampType)
		if !ok {
			break
		}
		from := src.DataType().(*arrow.TimestampType).Unit
		mul, div := unitScale(from, tt.Unit)
		b := array.NewTimestampBuilder(mem, tt)
		defer b.Release()
		b.Reserve(src.Len())
		for i := range src.Len() {
			if src.IsNull(i) {
				b.UnsafeAppendBoolToBitmap(false)
				continue
			}
			b.UnsafeAppend(arrow.Timestamp(int64(src.Value(i)) * mul / div))
		}
		return b.NewArray(), nil
	case *array.String, *array.LargeString, *array.Binary, *array.LargeBinary:
		if !arrow.IsBinaryLike(to.ID()) && to.ID() != arrow.STRING && to.ID() != arrow.LARGE_STRING {
			break
		}
		b := array.NewBuilder(mem, to).(bytesBuilder)
		defer b.Release()
		total := 0
		for i := range a.Len() {
			total += len(valueBytes(a, i))
		}
		b.Reserve(a.Len())
		b.ReserveData(total)
		for i := range a.Len() {
			if a.IsNull(i) {
				b.AppendNull()
				continue
			}
			b.UnsafeAppend(valueBytes(a, i))
		}
		return b.NewArray(), nil
	}
	return nil, fmt.Errorf("cannot convert %s to %s", a.DataType(), to)
}

// bytesBuilder builds strings and binaries alike.
type bytesBuilder interface {
	array.Builder
	UnsafeAppend([]byte)
	ReserveData(int)
}

// valueBytes is the i-th value of a string or binary array.
func valueBytes(a arrow.Array, i int) []byte {
	switch c := a.(type) {
	case *array.String:
		return []byte(c.Value(i))
	case *array.LargeString:
		return []byte(c.Value(i))
	case *array.Binary:
		return c.Value(i)
	case *array.LargeBinary:
		return c.Value(i)
	}
	return nil
}

// unitScale is what converts a time in unit from to unit to: multiply by
// mul, then divide by div.
func unitScale(from, to arrow.TimeUnit) (mul, div int64) {
	per := func(u arrow.TimeUnit) int64 {
		return map[arrow.TimeUnit]int64{arrow.Second: 1, arrow.Millisecond: 1e3, arrow.Microsecond: 1e6, arrow.Nanosecond: 1e9}[u]
	}
	f, t := per(from), per(to)
	if t >= f {
		return t / f, 1
	}
	return 1, f / t
}
