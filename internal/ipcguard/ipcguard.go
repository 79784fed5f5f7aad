package ipcguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Sentinel errors; every error of this package wraps one of them.
var (
	// ErrInvalid: the input is not well-formed Arrow IPC.
	ErrInvalid = errors.New("quiver: invalid Arrow IPC")
	// ErrLimit: the input is well-formed but over a limit.
	ErrLimit = errors.New("quiver: Arrow IPC over limit")
)

// Limits bound what one message, one stream and one schema may hold.
type Limits struct {
	// MaxMetadataBytes bounds one message's flatbuffer metadata, and a
	// file's footer (default 4 MiB).
	MaxMetadataBytes int
	// MaxMessageBytes bounds one message's body, as sent and as decoded
	// (compressed buffers counted uncompressed) (default 64 MiB).
	MaxMessageBytes int64
	// MaxStreamBytes bounds the bodies of all the messages of one stream,
	// as decoded (default 2 GiB).
	MaxStreamBytes int64
	// MaxFields bounds the fields of a schema, nested ones included
	// (default 10,000).
	MaxFields int
	// MaxDepth bounds how deep fields nest (default 32).
	MaxDepth int
	// MaxBatchRows bounds the rows of a record batch and the length of
	// each of its arrays (default 16,777,216).
	MaxBatchRows int64
}

// Default limits.
const (
	DefaultMaxMetadataBytes = 4 << 20
	DefaultMaxMessageBytes  = 64 << 20
	DefaultMaxStreamBytes   = 2 << 30
	DefaultMaxFields        = 10_000
	DefaultMaxDepth         = 32
	DefaultMaxBatchRows     = 1 << 24
)

// EnsureDefaults fills the zero fields with the defaults.
func (l *Limits) EnsureDefaults() {
	if l.MaxMetadataBytes <= 0 {
		l.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxStreamBytes <= 0 {
		l.MaxStreamBytes = DefaultMaxStreamBytes
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxFields
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxBatchRows <= 0 {
		l.MaxBatchRows = DefaultMaxBatchRows
	}
}

// Message header types (Message.fbs).
const (
	headerSchema     = 1
	headerDictionary = 2
	headerRecord     = 3
)

// Kind is the kind of message Message checked.
type Kind int

// Message kinds.
const (
	KindSchema Kind = iota + 1
	KindDictionary
	KindRecordBatch
)

func (k Kind) String() string {
	switch k {
	case KindSchema:
		return "schema"
	case KindDictionary:
		return "dictionary batch"
	case KindRecordBatch:
		return "record batch"
	}
	return fmt.Sprintf("kind %d", int(k))
}

// Message checks one IPC message: meta is its flatbuffer (without the
// continuation marker and length prefix), body its body. where names the
// message in errors ("message 3", "block 7"). It returns the message's kind
// and the bytes its body takes decoded.
func Message(meta, body []byte, lim Limits, where string) (Kind, int64, error) {
	lim.EnsureDefaults()
	if len(meta) > lim.MaxMetadataBytes {
		return 0, 0, fmt.Errorf("%w: %s: metadata of %d bytes is over the limit of %d", ErrLimit, where, len(meta), lim.MaxMetadataBytes)
	}
	if int64(len(body)) > lim.MaxMessageBytes {
		return 0, 0, fmt.Errorf("%w: %s: body of %d bytes is over the limit of %d", ErrLimit, where, len(body), lim.MaxMessageBytes)
	}
	v := &verifier{b: meta, lim: &lim, where: where}
	kind, decoded, err := v.message(body)
	if err != nil {
		return 0, 0, err
	}
	return kind, decoded, nil
}

// Stream checks the messages of one IPC stream in order and keeps its
// budget. The zero value is not usable: build one with NewStream.
type Stream struct {
	lim    Limits
	n      int
	total  int64
	schema bool
}

// NewStream returns a Stream with lim (zero fields take the defaults).
func NewStream(lim Limits) *Stream {
	lim.EnsureDefaults()
	return &Stream{lim: lim}
}

// Check checks the next message of the stream: the first is a schema, the
// rest dictionary or record batches, and their bodies, decoded, stay within
// the stream's budget.
func (s *Stream) Check(meta, body []byte) error {
	s.n++
	where := fmt.Sprintf("message %d", s.n)
	if len(meta) == 0 {
		return fmt.Errorf("%w: %s has no IPC metadata (a Flight message needs a data header)", ErrInvalid, where)
	}
	kind, decoded, err := Message(meta, body, s.lim, where)
	if err != nil {
		return err
	}
	switch {
	case !s.schema && kind != KindSchema:
		return fmt.Errorf("%w: %s is a %s; a stream starts with its schema", ErrInvalid, where, kind)
	case s.schema && kind == KindSchema:
		return fmt.Errorf("%w: %s is a second schema", ErrInvalid, where)
	}
	s.schema = true
	if decoded > s.lim.MaxStreamBytes-s.total {
		return fmt.Errorf("%w: %s: the stream's bodies reach %d bytes decoded, over the limit of %d", ErrLimit, where, s.total+decoded, s.lim.MaxStreamBytes)
	}
	s.total += decoded
	return nil
}

// Bytes is the body bytes, decoded, the stream has taken so far.
func (s *Stream) Bytes() int64 { return s.total }

// verifier walks one flatbuffer, bounding every read by its length.
type verifier struct {
	b     []byte
	lim   *Limits
	where string
	// fields counts the fields visited; strs the string bytes decoded.
	fields  int
	strs    int
	ntables int
}

func (v *verifier) invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, v.where, fmt.Sprintf(format, args...))
}

func (v *verifier) limit(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrLimit, v.where, fmt.Sprintf(format, args...))
}

func (v *verifier) size() uint64 { return uint64(len(v.b)) }

func (v *verifier) u16(p uint64) uint16 { return binary.LittleEndian.Uint16(v.b[p:]) }
func (v *verifier) u32(p uint64) uint32 { return binary.LittleEndian.Uint32(v.b[p:]) }
func (v *verifier) i64(p uint64) int64  { return int64(binary.LittleEndian.Uint64(v.b[p:])) }

// table is a verified table: its position, its vtable and their sizes.
type table struct {
	pos, vt     uint64
	vtLen, tLen uint64
}

func (v *verifier) root(what string) (table, error) {
	if len(v.b) < 8 {
		return table{}, v.invalid("%s of %d bytes is too short for a flatbuffer", what, len(v.b))
	}
	if len(v.b) > math.MaxInt32 {
		return table{}, v.limit("%s of %d bytes is too large", what, len(v.b))
	}
	return v.table(uint64(v.u32(0)), what)
}

// table verifies the table at pos: its vtable and inline part lie within
// the buffer and every field offset within the inline part.
func (v *verifier) table(pos uint64, what string) (table, error) {
	v.ntables++
	// Each table takes at least 4 bytes of its own; more visits than that
	// means tables are shared, which only the field count may allow.
	if v.ntables > len(v.b)/4+v.fields+1 {
		return table{}, v.invalid("%s: more tables than the metadata holds", what)
	}
	if pos+4 > v.size() {
		return table{}, v.invalid("%s at offset %d lies past the end of the %d-byte metadata", what, pos, len(v.b))
	}
	vt := int64(pos) - int64(int32(v.u32(pos)))
	if vt < 0 || uint64(vt)+4 > v.size() {
		return table{}, v.invalid("%s at offset %d has its vtable at %d, outside the %d-byte metadata", what, pos, vt, len(v.b))
	}
	t := table{pos: pos, vt: uint64(vt)}
	t.vtLen, t.tLen = uint64(v.u16(t.vt)), uint64(v.u16(t.vt+2))
	if t.vtLen < 4 || t.vtLen%2 != 0 || t.vt+t.vtLen > v.size() {
		return table{}, v.invalid("%s at offset %d has a vtable of %d bytes that does not fit the metadata", what, pos, t.vtLen)
	}
	if t.tLen < 4 || t.pos+t.tLen > v.size() {
		return table{}, v.invalid("%s at offset %d claims %d bytes, past the end of the %d-byte metadata", what, pos, t.tLen, len(v.b))
	}
	for i := uint64(4); i < t.vtLen; i += 2 {
		if fo := uint64(v.u16(t.vt + i)); fo != 0 && (fo < 4 || fo >= t.tLen) {
			return table{}, v.invalid("%s at offset %d has field %d at %d, outside its %d bytes", what, pos, (i-4)/2, fo, t.tLen)
		}
	}
	return t, nil
}

// field returns the position of slot's value of size bytes, or 0 when the
// table leaves it out.
func (v *verifier) field(t table, slot int, size uint64, what string) (uint64, error) {
	vo := 4 + 2*uint64(slot)
	if vo >= t.vtLen {
		return 0, nil
	}
	fo := uint64(v.u16(t.vt + vo))
	if fo == 0 {
		return 0, nil
	}
	if fo+size > t.tLen {
		return 0, v.invalid("%s: a %d-byte value at %d does not fit its table's %d bytes", what, size, fo, t.tLen)
	}
	return t.pos + fo, nil
}

func (v *verifier) scalar8(t table, slot int, what string) (int64, bool, error) {
	p, err := v.field(t, slot, 8, what)
	if err != nil || p == 0 {
		return 0, false, err
	}
	return v.i64(p), true, nil
}

func (v *verifier) scalar1(t table, slot int, what string) (byte, error) {
	p, err := v.field(t, slot, 1, what)
	if err != nil || p == 0 {
		return 0, err
	}
	return v.b[p], nil
}

// indirect follows the offset stored at p.
func (v *verifier) indirect(p uint64, what string) (uint64, error) {
	target := p + uint64(v.u32(p))
	if target >= v.size() {
		return 0, v.invalid("%s points to offset %d, past the end of the %d-byte metadata", what, target, len(v.b))
	}
	return target, nil
}

// subtable verifies the table slot points to; ok is false when absent.
func (v *verifier) subtable(t table, slot int, what string) (table, bool, error) {
	p, err := v.field(t, slot, 4, what)
	if err != nil || p == 0 {
		return table{}, false, err
	}
	target, err := v.indirect(p, what)
	if err != nil {
		return table{}, false, err
	}
	st, err := v.table(target, what)
	return st, err == nil, err
}

// vector verifies the vector slot points to, of n elements of elem bytes
// each, and returns the position of its first element.
func (v *verifier) vector(t table, slot int, elem uint64, what string) (start, n uint64, err error) {
	p, err := v.field(t, slot, 4, what)
	if err != nil || p == 0 {
		return 0, 0, err
	}
	target, err := v.indirect(p, what)
	if err != nil {
		return 0, 0, err
	}
	if target+4 > v.size() {
		return 0, 0, v.invalid("%s: vector length at offset %d lies past the end of the %d-byte metadata", what, target, len(v.b))
	}
	n = uint64(v.u32(target))
	if target+4+n*elem > v.size() {
		return 0, 0, v.invalid("%s claims %d entries (%d bytes each), more than the %d-byte metadata holds", what, n, elem, len(v.b))
	}
	return target + 4, n, nil
}

// str verifies the string slot points to (bytes and a terminating NUL) and
// counts it against the string budget.
func (v *verifier) str(t table, slot int, what string) error {
	start, n, err := v.vector(t, slot, 1, what)
	if err != nil || start == 0 {
		return err
	}
	if start+n >= v.size() {
		return v.invalid("%s of %d bytes has no room for its terminator", what, n)
	}
	v.strs += int(n)
	if v.strs > len(v.b) {
		return v.invalid("%s: names and metadata decode to more bytes than the %d-byte metadata holds (shared strings)", what, len(v.b))
	}
	return nil
}

// tables verifies a vector of tables at slot and calls each for every one.
func (v *verifier) tables(t table, slot int, what string, each func(i int, t table) error) (int, error) {
	start, n, err := v.vector(t, slot, 4, what)
	if err != nil || start == 0 {
		return 0, err
	}
	for i := uint64(0); i < n; i++ {
		name := fmt.Sprintf("%s[%d]", what, i)
		target, err := v.indirect(start+4*i, name)
		if err != nil {
			return 0, err
		}
		et, err := v.table(target, name)
		if err != nil {
			return 0, err
		}
		if err := each(int(i), et); err != nil {
			return 0, err
		}
	}
	return int(n), nil
}

func (v *verifier) keyValues(t table, slot int, what string) error {
	_, err := v.tables(t, slot, what, func(_ int, kv table) error {
		if err := v.str(kv, 0, what+" key"); err != nil {
			return err
		}
		return v.str(kv, 1, what+" value")
	})
	return err
}

func (v *verifier) message(body []byte) (Kind, int64, error) {
	t, err := v.root("message")
	if err != nil {
		return 0, 0, err
	}
	htype, err := v.scalar1(t, 1, "message header type")
	if err != nil {
		return 0, 0, err
	}
	bodyLen, _, err := v.scalar8(t, 3, "message body length")
	if err != nil {
		return 0, 0, err
	}
	if bodyLen < 0 || bodyLen > int64(len(body)) {
		return 0, 0, v.invalid("message claims a body of %d bytes, but %d came with it", bodyLen, len(body))
	}
	if err := v.keyValues(t, 4, "message custom metadata"); err != nil {
		return 0, 0, err
	}
	h, ok, err := v.subtable(t, 2, "message header")
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, v.invalid("message has no header")
	}
	switch htype {
	case headerSchema:
		return KindSchema, 0, v.schema(h)
	case headerDictionary:
		if _, _, err := v.scalar8(h, 0, "dictionary id"); err != nil {
			return 0, 0, err
		}
		data, ok, err := v.subtable(h, 1, "dictionary data")
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return 0, 0, v.invalid("dictionary batch has no data")
		}
		n, err := v.recordBatch(data, body[:bodyLen])
		return KindDictionary, n, err
	case headerRecord:
		n, err := v.recordBatch(h, body[:bodyLen])
		return KindRecordBatch, n, err
	}
	return 0, 0, v.invalid("message header type %d is not a schema, a dictionary batch or a record batch", htype)
}

// Field type ids (Schema.fbs) whose tables hold more than scalars.
const (
	typeTimestamp = 10
	typeUnion     = 14
	typeMax       = 26 // LargeListView
)

func (v *verifier) schema(t table) error {
	if _, err := v.field(t, 0, 2, "schema endianness"); err != nil {
		return err
	}
	n, err := v.tables(t, 1, "schema fields", func(i int, f table) error {
		return v.schemaField(f, fmt.Sprintf("field %d", i), 1)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return v.invalid("schema has no fields")
	}
	if err := v.keyValues(t, 2, "schema custom metadata"); err != nil {
		return err
	}
	_, _, err = v.vector(t, 3, 8, "schema features")
	return err
}

func (v *verifier) schemaField(t table, path string, depth int) error {
	v.fields++
	if v.fields > v.lim.MaxFields {
		return v.limit("the schema has more than %d fields (at %s)", v.lim.MaxFields, path)
	}
	if depth > v.lim.MaxDepth {
		return v.limit("%s nests %d deep, over the limit of %d", path, depth, v.lim.MaxDepth)
	}
	if err := v.str(t, 0, path+" name"); err != nil {
		return err
	}
	typ, err := v.scalar1(t, 2, path+" type")
	if err != nil {
		return err
	}
	if typ == 0 || typ > typeMax {
		return v.invalid("%s has type id %d, not an Arrow type", path, typ)
	}
	tt, ok, err := v.subtable(t, 3, path+" type")
	if err != nil {
		return err
	}
	if !ok {
		return v.invalid("%s has no type", path)
	}
	switch typ {
	case typeTimestamp:
		if err := v.str(tt, 1, path+" time zone"); err != nil {
			return err
		}
	case typeUnion:
		_, n, err := v.vector(tt, 1, 4, path+" union type ids")
		if err != nil {
			return err
		}
		if n > 128 {
			return v.invalid("%s lists %d union type ids; a union has at most 128", path, n)
		}
	}
	if d, ok, err := v.subtable(t, 4, path+" dictionary"); err != nil {
		return err
	} else if ok {
		if _, _, err := v.subtable(d, 1, path+" dictionary index type"); err != nil {
			return err
		}
	}
	if _, err := v.tables(t, 5, path+" children", func(i int, c table) error {
		return v.schemaField(c, fmt.Sprintf("%s child %d", path, i), depth+1)
	}); err != nil {
		return err
	}
	return v.keyValues(t, 6, path+" custom metadata")
}

// recordBatch checks a record batch's counts and buffers against its body
// and returns the bytes the body takes decoded.
func (v *verifier) recordBatch(t table, body []byte) (int64, error) {
	rows, _, err := v.scalar8(t, 0, "record batch length")
	if err != nil {
		return 0, err
	}
	if rows < 0 {
		return 0, v.invalid("record batch has %d rows", rows)
	}
	if rows > v.lim.MaxBatchRows {
		return 0, v.limit("record batch of %d rows is over the limit of %d", rows, v.lim.MaxBatchRows)
	}
	start, n, err := v.vector(t, 1, 16, "record batch nodes")
	if err != nil {
		return 0, err
	}
	for i := uint64(0); i < n; i++ {
		p := start + 16*i
		length, nulls := v.i64(p), v.i64(p+8)
		if length < 0 || nulls < 0 || nulls > length {
			return 0, v.invalid("array %d has length %d and %d nulls", i, length, nulls)
		}
		if length > v.lim.MaxBatchRows {
			return 0, v.limit("array %d of %d values is over the limit of %d", i, length, v.lim.MaxBatchRows)
		}
	}
	codec := -1
	if c, ok, err := v.subtable(t, 3, "record batch compression"); err != nil {
		return 0, err
	} else if ok {
		cb, err := v.scalar1(c, 0, "compression codec")
		if err != nil {
			return 0, err
		}
		method, err := v.scalar1(c, 1, "compression method")
		if err != nil {
			return 0, err
		}
		if cb > 1 || method != 0 {
			return 0, v.invalid("compression codec %d, method %d is not LZ4 frame or ZSTD per buffer", cb, method)
		}
		codec = int(cb)
	}
	bstart, nbuf, err := v.vector(t, 2, 16, "record batch buffers")
	if err != nil {
		return 0, err
	}
	decoded := int64(len(body))
	if codec >= 0 {
		decoded = 0
	}
	for i := uint64(0); i < nbuf; i++ {
		p := bstart + 16*i
		off, length := v.i64(p), v.i64(p+8)
		if off < 0 || length < 0 || off > int64(len(body)) || length > int64(len(body))-off {
			return 0, v.invalid("buffer %d at offset %d of %d bytes lies outside the %d-byte body", i, off, length, len(body))
		}
		if codec < 0 || length == 0 {
			continue
		}
		if length < 8 {
			return 0, v.invalid("compressed buffer %d of %d bytes has no room for its uncompressed length", i, length)
		}
		raw := int64(binary.LittleEndian.Uint64(body[off:]))
		switch {
		case raw == -1: // stored uncompressed
			raw = length - 8
		case raw < 0:
			return 0, v.invalid("compressed buffer %d claims %d bytes uncompressed", i, raw)
		}
		if raw > v.lim.MaxMessageBytes-decoded {
			return 0, v.limit("compressed buffers decode to more than %d bytes (buffer %d claims %d)", v.lim.MaxMessageBytes, i, raw)
		}
		decoded += raw
	}
	vstart, nvar, err := v.vector(t, 4, 8, "record batch variadic buffer counts")
	if err != nil {
		return 0, err
	}
	var total uint64
	for i := uint64(0); i < nvar; i++ {
		c := v.i64(vstart + 8*i)
		if c < 0 || uint64(c) > nbuf-total {
			return 0, v.invalid("variadic buffer count %d is %d, more than the %d buffers of the batch", i, c, nbuf)
		}
		total += uint64(c)
	}
	return decoded, nil
}
