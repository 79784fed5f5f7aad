package ipcguard

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// ValidateRecord checks each column of a decoded record batch against its
// buffers: validity bitmaps and fixed-width values long enough for the
// array, offsets within their data, children and dictionary indices in
// range. arrow-go builds arrays from IPC without these checks, and code
// that reads Arrow buffers through the C data interface has no bounds
// checks of its own.
func ValidateRecord(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			return fmt.Errorf("%w: column %d (%q) has %d values, the batch %d rows", ErrInvalid, i, rec.ColumnName(i), col.Len(), rec.NumRows())
		}
		if err := validateColumn(col.Data()); err != nil {
			return fmt.Errorf("%w: column %d (%q): %v", ErrInvalid, i, rec.ColumnName(i), err)
		}
	}
	return nil
}

// validateColumn validates a column; arrow-go panics on some of what it
// finds, which is reported as an error.
func validateColumn(d arrow.ArrayData) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return validate(d, 0)
}

func validate(d arrow.ArrayData, depth int) error {
	if depth > DefaultMaxDepth*2 {
		return fmt.Errorf("arrays nest more than %d deep", DefaultMaxDepth*2)
	}
	if d.Len() < 0 || d.Offset() < 0 || d.NullN() > d.Len() {
		return fmt.Errorf("length %d, offset %d, %d nulls", d.Len(), d.Offset(), d.NullN())
	}
	end := int64(d.Offset()) + int64(d.Len())
	bufs := d.Buffers()
	if len(bufs) > 0 && bufs[0] != nil && d.NullN() != 0 && int64(bufs[0].Len()) < (end+7)/8 {
		return fmt.Errorf("validity bitmap of %d bytes for %d values", bufs[0].Len(), end)
	}
	if fw, ok := d.DataType().(arrow.FixedWidthDataType); ok && len(bufs) > 1 && d.DataType().ID() != arrow.DICTIONARY {
		need := (end*int64(fw.BitWidth()) + 7) / 8
		if d.Len() > 0 && (bufs[1] == nil || int64(bufs[1].Len()) < need) {
			got := 0
			if bufs[1] != nil {
				got = bufs[1].Len()
			}
			return fmt.Errorf("%s values: %d bytes for %d values", d.DataType(), got, end)
		}
	}
	for i, c := range d.Children() {
		if err := validate(c, depth+1); err != nil {
			return fmt.Errorf("child %d: %w", i, err)
		}
	}
	arr := array.MakeFromData(d)
	defer arr.Release()
	if v, ok := arr.(interface{ ValidateFull() error }); ok {
		if err := v.ValidateFull(); err != nil {
			return err
		}
	}
	if dict, ok := arr.(*array.Dictionary); ok {
		values := dict.Dictionary()
		if err := validate(values.Data(), depth+1); err != nil {
			return fmt.Errorf("dictionary: %w", err)
		}
		for i := 0; i < dict.Len(); i++ {
			if dict.IsValid(i) {
				if k := dict.GetValueIndex(i); k < 0 || k >= values.Len() {
					return fmt.Errorf("index %d of row %d is outside the dictionary of %d values", k, i, values.Len())
				}
			}
		}
	}
	return nil
}
