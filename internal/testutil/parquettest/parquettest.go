// Package parquettest writes Go structs as Parquet files for tests, through
// arrow-go's pqarrow, so test fixtures say their schema in the struct.
//
// A field's tag `parquet:"name,option,..."` names its column; options:
//
//   - optional: the column is nullable (the field is a pointer; nil is null);
//   - timestamp(UNIT:utc) or timestamp(UNIT:local), UNIT millisecond or
//     microsecond: a time.Time column, adjusted to UTC or naive (DuckDB
//     reads them as TIMESTAMP WITH TIME ZONE and TIMESTAMP);
//   - list: a slice field as a list of required elements.
//
// Field types: int32, int64, float32, float64, bool, string, time.Time,
// pointers to them, and []float32.
package parquettest

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

type column struct {
	index int
	field arrow.Field
	unit  arrow.TimeUnit
}

var timeType = reflect.TypeFor[time.Time]()

// Write writes rows as one Parquet file at path; with no rows the file
// still has the schema.
func Write[T any](path string, rows []T) error {
	cols, err := columns(reflect.TypeFor[T]())
	if err != nil {
		return err
	}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = c.field
	}
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, r := range rows {
		rv := reflect.ValueOf(r)
		for i, c := range cols {
			if err := appendValue(b.Field(i), rv.Field(c.index), c.unit); err != nil {
				return fmt.Errorf("column %s: %w", c.field.Name, err)
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w, err := pqarrow.NewFileWriter(schema, f, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		_ = f.Close() // the writer's error is the one to report
		return err
	}
	if rec.NumRows() > 0 {
		if err := w.Write(rec); err != nil {
			_ = w.Close() // the write error is the one to report
			return err
		}
	}
	return w.Close() // closes f
}

func columns(rt reflect.Type) ([]column, error) {
	if rt.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", rt)
	}
	var cols []column
	for i := range rt.NumField() {
		sf := rt.Field(i)
		tag, ok := sf.Tag.Lookup("parquet")
		if !ok {
			return nil, fmt.Errorf("field %s has no parquet tag", sf.Name)
		}
		parts := strings.Split(tag, ",")
		c := column{index: i, field: arrow.Field{Name: parts[0]}}
		tz, isTime := "", false
		for _, opt := range parts[1:] {
			switch {
			case opt == "optional":
				c.field.Nullable = true
			case opt == "list":
			case strings.HasPrefix(opt, "timestamp(") && strings.HasSuffix(opt, ")"):
				unit, zone, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(opt, "timestamp("), ")"), ":")
				switch unit {
				case "millisecond":
					c.unit = arrow.Millisecond
				case "microsecond":
					c.unit = arrow.Microsecond
				default:
					return nil, fmt.Errorf("field %s: unit %q", sf.Name, unit)
				}
				if zone == "utc" {
					tz = "UTC"
				}
				isTime = true
			default:
				return nil, fmt.Errorf("field %s: option %q", sf.Name, opt)
			}
		}
		t := sf.Type
		if t.Kind() == reflect.Pointer {
			if !c.field.Nullable {
				return nil, fmt.Errorf("field %s is a pointer but not optional", sf.Name)
			}
			t = t.Elem()
		}
		switch {
		case t == timeType:
			if !isTime {
				return nil, fmt.Errorf("field %s: a time.Time needs timestamp(UNIT:utc|local)", sf.Name)
			}
			c.field.Type = &arrow.TimestampType{Unit: c.unit, TimeZone: tz}
		case t.Kind() == reflect.Int64:
			c.field.Type = arrow.PrimitiveTypes.Int64
		case t.Kind() == reflect.Int32:
			c.field.Type = arrow.PrimitiveTypes.Int32
		case t.Kind() == reflect.Float32:
			c.field.Type = arrow.PrimitiveTypes.Float32
		case t.Kind() == reflect.Float64:
			c.field.Type = arrow.PrimitiveTypes.Float64
		case t.Kind() == reflect.Bool:
			c.field.Type = arrow.FixedWidthTypes.Boolean
		case t.Kind() == reflect.String:
			c.field.Type = arrow.BinaryTypes.String
		case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Float32:
			c.field.Type = arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)
		default:
			return nil, fmt.Errorf("field %s: type %s is not supported", sf.Name, sf.Type)
		}
		cols = append(cols, c)
	}
	return cols, nil
}

func appendValue(b array.Builder, v reflect.Value, unit arrow.TimeUnit) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			b.AppendNull()
			return nil
		}
		v = v.Elem()
	}
	switch b := b.(type) {
	case *array.Int64Builder:
		b.Append(v.Int())
	case *array.Int32Builder:
		b.Append(int32(v.Int()))
	case *array.Float32Builder:
		b.Append(float32(v.Float()))
	case *array.Float64Builder:
		b.Append(v.Float())
	case *array.BooleanBuilder:
		b.Append(v.Bool())
	case *array.StringBuilder:
		b.Append(v.String())
	case *array.TimestampBuilder:
		t := v.Interface().(time.Time)
		if unit == arrow.Millisecond {
			b.Append(arrow.Timestamp(t.UnixMilli()))
		} else {
			b.Append(arrow.Timestamp(t.UnixMicro()))
		}
	case *array.ListBuilder:
		b.Append(true)
		vb := b.ValueBuilder().(*array.Float32Builder)
		for i := range v.Len() {
			vb.Append(float32(v.Index(i).Float()))
		}
	default:
		return fmt.Errorf("builder %T", b)
	}
	return nil
}
