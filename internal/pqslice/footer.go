// Package pqslice cuts a Parquet file down to some of its top-level
// columns and row groups without decoding a page: a slice is a valid
// Parquet file made of the selected column chunks, copied byte for byte
// from the original, and a footer rewritten to name only them at their
// new offsets. The object cache uses it to read from object storage only
// the columns and row groups a point-in-time join needs, while DuckDB
// still reads an ordinary local Parquet file.
//
// A slice keeps each chunk's statistics, encodings and compression. It
// drops what refers to bytes outside the chunks: page indexes (column and
// offset index) and bloom filters, which are optional, and the
// ARROW:schema key of the file's metadata when columns are dropped (it
// would describe columns the slice has not). Files a slice cannot keep
// exact are refused with ErrUnsupported, so the caller copies them whole:
// an encrypted footer, column chunks in other files, a footer whose row
// groups do not match its schema.
package pqslice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"
)

// ErrUnsupported: the file is valid but cannot be sliced; copy it whole.
var ErrUnsupported = errors.New("parquet file cannot be sliced")

// TailSize is how many of a file's last bytes to read first: most
// footers fit, and a larger one says its length (MetadataLength).
const TailSize = 64 << 10

var magic = []byte("PAR1")

// MetadataLength returns how many of the file's last bytes hold its
// footer (the metadata, its length and the magic), from at least its
// last 8 bytes.
func MetadataLength(tail []byte, size int64) (int64, error) {
	if len(tail) < 8 || size < 12 {
		return 0, fmt.Errorf("%w: %d bytes is too short for a Parquet file", errMalformed, size)
	}
	end := tail[len(tail)-4:]
	if string(end) == "PARE" {
		return 0, fmt.Errorf("%w: its footer is encrypted", ErrUnsupported)
	}
	if string(end) != string(magic) {
		return 0, fmt.Errorf("%w: it does not end with PAR1", errMalformed)
	}
	n := int64(binary.LittleEndian.Uint32(tail[len(tail)-8:]))
	if n+12 > size {
		return 0, fmt.Errorf("%w: its metadata is %d bytes, in a %d-byte file", errMalformed, n, size)
	}
	return n + 8, nil
}

// Footer is a file's parsed metadata.
type Footer struct {
	size   int64
	meta   *tstruct
	schema []*tstruct
	// leaves are the leaf columns in schema order: each one's top-level
	// column (its index among the root's children) and schema element.
	leaves []leaf
	// tops are the top-level columns' names.
	tops      []string
	rowGroups []*tstruct
}

type leaf struct {
	top  int
	elem *tstruct
}

// Schema and metadata field numbers of parquet.thrift.
const (
	fmSchema, fmNumRows, fmRowGroups, fmKeyValue, fmColumnOrders, fmEncryption = 2, 3, 4, 5, 7, 8
	seType, seName, seNumChildren, seConverted, seLogical                      = 1, 4, 5, 6, 10
	rgColumns, rgTotalByteSize, rgNumRows, rgFileOffset, rgTotalCompressed     = 1, 2, 3, 5, 6
	ccFilePath, ccFileOffset, ccMeta, ccOffsetIndexOff, ccOffsetIndexLen       = 1, 2, 3, 4, 5
	ccColumnIndexOff, ccColumnIndexLen, ccCrypto, ccEncryptedMeta              = 6, 7, 8, 9
	cmTotalUncompressed, cmTotalCompressed, cmDataPage, cmIndexPage            = 6, 7, 9, 10
	cmDictPage, cmStatistics, cmBloomOffset, cmBloomLength                     = 11, 12, 14, 15
	stMax, stMin, stMaxValue, stMinValue                                       = 1, 2, 5, 6
)

// Parse parses a file's footer from its last bytes (at least
// MetadataLength of them) and its size.
func Parse(tail []byte, size int64) (*Footer, error) {
	n, err := MetadataLength(tail, size)
	if err != nil {
		return nil, err
	}
	if int64(len(tail)) < n {
		return nil, fmt.Errorf("%w: %d bytes of its end read, its footer needs %d", errMalformed, len(tail), n)
	}
	meta, err := decodeStruct(tail[int64(len(tail))-n : len(tail)-8])
	if err != nil {
		return nil, err
	}
	f := &Footer{size: size, meta: meta}
	if meta.get(fmEncryption) != nil {
		return nil, fmt.Errorf("%w: it is encrypted", ErrUnsupported)
	}
	var ok bool
	if f.schema, ok = meta.structs(fmSchema); !ok || len(f.schema) == 0 {
		return nil, fmt.Errorf("%w: no schema", errMalformed)
	}
	if f.rowGroups, ok = meta.structs(fmRowGroups); !ok {
		if meta.get(fmRowGroups) != nil {
			return nil, fmt.Errorf("%w: row groups are not a list of structs", errMalformed)
		}
	}
	if err := f.walkSchema(); err != nil {
		return nil, err
	}
	for i, rg := range f.rowGroups {
		cols, ok := rg.structs(rgColumns)
		if !ok || len(cols) != len(f.leaves) {
			return nil, fmt.Errorf("%w: row group %d has %d column chunks for %d leaf columns", errMalformed, i, len(cols), len(f.leaves))
		}
		for j, cc := range cols {
			if cc.get(ccFilePath) != nil {
				return nil, fmt.Errorf("%w: column chunks in other files", ErrUnsupported)
			}
			if cc.get(ccCrypto) != nil || cc.get(ccEncryptedMeta) != nil {
				return nil, fmt.Errorf("%w: encrypted columns", ErrUnsupported)
			}
			if _, _, err := f.chunkRange(cc); err != nil {
				return nil, fmt.Errorf("row group %d column %d: %w", i, j, err)
			}
		}
	}
	return f, nil
}

// walkSchema finds the leaves and top-level columns of the flattened
// schema tree (depth first, each group followed by its children).
func (f *Footer) walkSchema() error {
	rootChildren, _ := f.schema[0].int(seNumChildren)
	next := 1
	var walk func(top, depth int) error
	walk = func(top, depth int) error {
		if next >= len(f.schema) {
			return fmt.Errorf("%w: the schema ends inside a group", errMalformed)
		}
		if depth > maxDepth {
			return fmt.Errorf("%w: the schema nests deeper than %d", errMalformed, maxDepth)
		}
		el := f.schema[next]
		next++
		kids, group := el.int(seNumChildren)
		if !group {
			f.leaves = append(f.leaves, leaf{top: top, elem: el})
			return nil
		}
		if kids < 0 || kids > int64(len(f.schema)) {
			return fmt.Errorf("%w: a group of %d children", errMalformed, kids)
		}
		for range kids {
			if err := walk(top, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if rootChildren < 0 || rootChildren > int64(len(f.schema)) {
		return fmt.Errorf("%w: a root of %d children", errMalformed, rootChildren)
	}
	for i := range int(rootChildren) {
		if next < len(f.schema) {
			name, _ := f.schema[next].str(seName)
			f.tops = append(f.tops, string(name))
		}
		if err := walk(i, 1); err != nil {
			return err
		}
	}
	if next != len(f.schema) {
		return fmt.Errorf("%w: %d schema elements, the tree uses %d", errMalformed, len(f.schema), next)
	}
	return nil
}

// chunkRange returns where a column chunk's pages are: from its
// dictionary page (when it has one before its first data page) for its
// compressed size.
func (f *Footer) chunkRange(cc *tstruct) (start, length int64, err error) {
	md := cc.child(ccMeta)
	if md == nil {
		return 0, 0, fmt.Errorf("%w: a column chunk without metadata", errMalformed)
	}
	data, ok1 := md.int(cmDataPage)
	length, ok2 := md.int(cmTotalCompressed)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("%w: a column chunk without its data page offset or size", errMalformed)
	}
	start = data
	if dict, ok := md.int(cmDictPage); ok && dict >= 4 && dict < data {
		start = dict
	}
	if start < 4 || length < 0 || start+length > f.size-8 {
		return 0, 0, fmt.Errorf("%w: a column chunk at %d of %d bytes in a %d-byte file", errMalformed, start, length, f.size)
	}
	return start, length, nil
}

// Columns returns the top-level column names, in file order.
func (f *Footer) Columns() []string { return append([]string(nil), f.tops...) }

// RowGroups returns the number of row groups.
func (f *Footer) RowGroups() int { return len(f.rowGroups) }

// TimeRange returns the least and greatest value of the top-level
// column col (matched case-insensitively) in row group rg, as
// microseconds since the epoch, when col is a timestamp or date leaf
// with statistics. Timestamps without a time zone are read as UTC wall
// clock times, as the engine reads them.
func (f *Footer) TimeRange(rg int, col string) (lo, hi int64, ok bool) {
	if rg < 0 || rg >= len(f.rowGroups) {
		return 0, 0, false
	}
	li := -1
	for i, l := range f.leaves {
		if strings.EqualFold(f.tops[l.top], col) {
			if li >= 0 {
				return 0, 0, false // a group, not a leaf
			}
			li = i
		}
	}
	if li < 0 {
		return 0, 0, false
	}
	scale, width, ok := timeScale(f.leaves[li].elem)
	if !ok {
		return 0, 0, false
	}
	cols, _ := f.rowGroups[rg].structs(rgColumns)
	st := cols[li].child(ccMeta).child(cmStatistics)
	minB, ok1 := st.str(stMinValue)
	maxB, ok2 := st.str(stMaxValue)
	if !ok1 || !ok2 {
		// The deprecated fields sort signed, which is right for
		// timestamps and dates.
		minB, ok1 = st.str(stMin)
		maxB, ok2 = st.str(stMax)
	}
	if !ok1 || !ok2 || len(minB) != width || len(maxB) != width {
		return 0, 0, false
	}
	read := func(b []byte) int64 {
		if width == 4 {
			return int64(int32(binary.LittleEndian.Uint32(b)))
		}
		return int64(binary.LittleEndian.Uint64(b))
	}
	return scaleMicros(read(minB), scale, false), scaleMicros(read(maxB), scale, true), true
}

// timeScale returns how a timestamp or date leaf's values convert to
// microseconds: multiplied by scale (positive) or divided by -scale, and
// the values' width in bytes.
func timeScale(el *tstruct) (scale int64, width int, ok bool) {
	typ, _ := el.int(seType)
	if lt := el.child(seLogical); lt != nil {
		switch {
		case lt.child(6) != nil && typ == 1: // DATE, INT32
			return 86_400_000_000, 4, true
		case lt.child(8) != nil && typ == 2: // TIMESTAMP, INT64
			unit := lt.child(8).child(2)
			switch {
			case unit.child(1) != nil:
				return 1000, 8, true
			case unit.child(2) != nil:
				return 1, 8, true
			case unit.child(3) != nil:
				return -1000, 8, true
			}
		}
		return 0, 0, false
	}
	switch ct, _ := el.int(seConverted); {
	case ct == 6 && typ == 1: // DATE
		return 86_400_000_000, 4, true
	case ct == 9 && typ == 2: // TIMESTAMP_MILLIS
		return 1000, 8, true
	case ct == 10 && typ == 2: // TIMESTAMP_MICROS
		return 1, 8, true
	}
	return 0, 0, false
}

// scaleMicros converts v to microseconds, rounding outwards (up for a
// greatest value) and saturating.
func scaleMicros(v, scale int64, up bool) int64 {
	if scale < 0 {
		d := -scale
		q := v / d
		if r := v % d; r != 0 && (up == (r > 0)) {
			if up {
				q++
			} else {
				q--
			}
		}
		return q
	}
	if v > math.MaxInt64/scale {
		return math.MaxInt64
	}
	if v < math.MinInt64/scale {
		return math.MinInt64
	}
	return v * scale
}

// Slice is a planned slice of a file: its size, the byte ranges it copies
// from the original and the footer it ends with.
type Slice struct {
	// Size is the slice's length in bytes.
	Size int64
	// Copies are the ranges copied from the original, in the slice's
	// order; Copies[i] lands right after Copies[i-1] (the first after
	// the leading magic).
	Copies []Range
	// Rows is the number of rows the slice holds.
	Rows  int64
	tail  []byte
	Cover float64 // bytes copied over the original's size
}

// Range is a byte range of the original file.
type Range struct{ Off, Len int64 }

// Plan plans the slice of the top-level columns named (matched
// case-insensitively; a name the file lacks is ignored, and nil means
// every column) and of the row groups keep accepts (nil: all). Its
// footer names the kept chunks at their offsets in the slice.
func (f *Footer) Plan(columns []string, keep func(rg int) bool) (*Slice, error) {
	keepTop := make([]bool, len(f.tops))
	for i, name := range f.tops {
		keepTop[i] = columns == nil
		for _, c := range columns {
			if strings.EqualFold(c, name) {
				keepTop[i] = true
			}
		}
	}
	projected := columns != nil && !all(keepTop)
	// The schema: the root, then each kept top-level column's subtree.
	root := *f.schema[0]
	root.fields = append([]field(nil), root.fields...)
	schema := []*tstruct{&root}
	kept := 0
	next := 1
	for i := range f.tops {
		end := next + subtreeLen(f.schema, next)
		if keepTop[i] {
			schema = append(schema, f.schema[next:end]...)
			kept++
		}
		next = end
	}
	root.setInt(seNumChildren, thrift.I32, int64(kept))
	keepLeaf := make([]bool, len(f.leaves))
	for i, l := range f.leaves {
		keepLeaf[i] = keepTop[l.top]
	}

	s := &Slice{}
	at := int64(len(magic))
	var groups []*tstruct
	for i, rg := range f.rowGroups {
		if keep != nil && !keep(i) {
			continue
		}
		cols, _ := rg.structs(rgColumns)
		var out []*tstruct
		var compressed, uncompressed int64
		first := at
		for j, cc := range cols {
			if !keepLeaf[j] {
				continue
			}
			start, length, err := f.chunkRange(cc)
			if err != nil {
				return nil, err
			}
			out = append(out, relocate(cc, at-start))
			s.Copies = append(s.Copies, Range{Off: start, Len: length})
			compressed += length
			u, _ := cc.child(ccMeta).int(cmTotalUncompressed)
			uncompressed += u
			at += length
		}
		g := &tstruct{fields: append([]field(nil), rg.fields...)}
		g.setStructs(rgColumns, out)
		g.setInt(rgTotalByteSize, thrift.I64, uncompressed)
		if g.get(rgTotalCompressed) != nil {
			g.setInt(rgTotalCompressed, thrift.I64, compressed)
		}
		if g.get(rgFileOffset) != nil {
			g.setInt(rgFileOffset, thrift.I64, first)
		}
		n, _ := rg.int(rgNumRows)
		s.Rows += n
		groups = append(groups, g)
	}
	meta := &tstruct{fields: append([]field(nil), f.meta.fields...)}
	meta.setStructs(fmSchema, schema)
	meta.setStructs(fmRowGroups, groups)
	meta.setInt(fmNumRows, thrift.I64, s.Rows)
	if v := meta.get(fmColumnOrders); v != nil && v.typ == thrift.LIST && len(v.list) == len(f.leaves) {
		var orders []value
		for j, o := range v.list {
			if keepLeaf[j] {
				orders = append(orders, o)
			}
		}
		meta.set(fmColumnOrders, value{typ: thrift.LIST, elem: v.elem, list: orders})
	} else if v != nil {
		meta.drop(fmColumnOrders)
	}
	if kvs, ok := meta.structs(fmKeyValue); ok && projected {
		var out []*tstruct
		for _, kv := range kvs {
			if k, _ := kv.str(1); string(k) != "ARROW:schema" {
				out = append(out, kv)
			}
		}
		meta.setStructs(fmKeyValue, out)
	}
	enc, err := encodeStruct(meta)
	if err != nil {
		return nil, fmt.Errorf("encode the slice's footer: %w", err)
	}
	s.tail = binary.LittleEndian.AppendUint32(enc, uint32(len(enc)))
	s.tail = append(s.tail, magic...)
	s.Size = at + int64(len(s.tail))
	s.Cover = float64(at-int64(len(magic))) / float64(max(f.size, 1))
	return s, nil
}

// Head is the slice's first bytes (before Copies).
func (s *Slice) Head() []byte { return magic }

// Tail is the slice's last bytes (after Copies): its footer.
func (s *Slice) Tail() []byte { return s.tail }

func all(b []bool) bool {
	for _, v := range b {
		if !v {
			return false
		}
	}
	return true
}

// subtreeLen returns how many schema elements the subtree at i spans.
func subtreeLen(schema []*tstruct, i int) int {
	n := 1
	kids, _ := schema[i].int(seNumChildren)
	for range kids {
		n += subtreeLen(schema, i+n)
	}
	return n
}

// relocate returns a copy of column chunk cc with its offsets moved by
// delta, and its page indexes and bloom filter, which lie outside the
// chunk, dropped.
func relocate(cc *tstruct, delta int64) *tstruct {
	md := cc.child(ccMeta)
	m := &tstruct{fields: append([]field(nil), md.fields...)}
	for _, id := range []int16{cmDataPage, cmDictPage} {
		if v, ok := m.int(id); ok && (id == cmDataPage || v >= 4) {
			m.setInt(id, thrift.I64, v+delta)
		} else if ok {
			m.drop(id)
		}
	}
	for _, id := range []int16{cmIndexPage, cmBloomOffset, cmBloomLength} {
		m.drop(id)
	}
	c := &tstruct{fields: append([]field(nil), cc.fields...)}
	for _, id := range []int16{ccOffsetIndexOff, ccOffsetIndexLen, ccColumnIndexOff, ccColumnIndexLen} {
		c.drop(id)
	}
	data, _ := m.int(cmDataPage)
	start := data
	if d, ok := m.int(cmDictPage); ok && d < data {
		start = d
	}
	c.setInt(ccFileOffset, thrift.I64, start)
	c.set(ccMeta, value{typ: thrift.STRUCT, st: m})
	return c
}
