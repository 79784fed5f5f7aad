package ipcguard

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// magic opens and closes an Arrow IPC file.
var magic = []byte("ARROW1")

// Block is one message of a file: where it starts, the bytes of its
// metadata (prefix and padding included) and of its body.
type Block struct {
	Offset int64
	Meta   int32
	Body   int64
}

// File is the layout of an Arrow IPC file whose footer and dictionaries
// have been checked.
type File struct {
	Dictionaries  []Block
	RecordBatches []Block
	lim           Limits
	// footer is a copy of the footer as checked, at footerStart.
	footer      []byte
	footerStart int64
}

// CheckFile checks an Arrow IPC file held in data: its magic, its footer
// (the schema and every block within the file, before the footer), and
// every dictionary batch. Record batches are checked one by one with
// CheckRecordBatch, just before they are decoded.
func CheckFile(data []byte, lim Limits) (*File, error) {
	lim.EnsureDefaults()
	const tail = 4 + 6 // footer length, magic
	size := int64(len(data))
	if size < 8+tail || !bytes.Equal(data[:6], magic) || !bytes.Equal(data[size-6:], magic) {
		return nil, fmt.Errorf("%w: no ARROW1 magic at both ends of its %d bytes", ErrInvalid, size)
	}
	flen := int64(binary.LittleEndian.Uint32(data[size-tail:]))
	end := size - tail
	if flen <= 0 || flen > end-8 {
		return nil, fmt.Errorf("%w: footer: claims %d bytes, the file has %d before it", ErrInvalid, flen, end-8)
	}
	if flen > int64(lim.MaxMetadataBytes) {
		return nil, fmt.Errorf("%w: footer of %d bytes is over the limit of %d", ErrLimit, flen, lim.MaxMetadataBytes)
	}
	footerStart := end - flen
	v := &verifier{b: data[footerStart:end], lim: &lim, where: "footer"}
	t, err := v.root("footer")
	if err != nil {
		return nil, err
	}
	sch, ok, err := v.subtable(t, 1, "footer schema")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, v.invalid("the footer has no schema")
	}
	if err := v.schema(sch); err != nil {
		return nil, err
	}
	f := &File{lim: lim, footer: bytes.Clone(data[footerStart:end]), footerStart: footerStart}
	if f.Dictionaries, err = v.blocks(t, 2, "dictionary", footerStart); err != nil {
		return nil, err
	}
	if f.RecordBatches, err = v.blocks(t, 3, "record batch", footerStart); err != nil {
		return nil, err
	}
	if err := v.keyValues(t, 4, "footer custom metadata"); err != nil {
		return nil, err
	}
	var total int64
	for i, b := range f.Dictionaries {
		n, err := f.check(data, b, KindDictionary, fmt.Sprintf("dictionary block %d", i))
		if err != nil {
			return nil, err
		}
		if n > lim.MaxStreamBytes-total {
			return nil, fmt.Errorf("%w: dictionary block %d: dictionaries decode to more than %d bytes", ErrLimit, i, lim.MaxStreamBytes)
		}
		total += n
	}
	return f, nil
}

// blocks reads and checks a footer's vector of blocks: each lies between
// the leading magic and the footer.
func (v *verifier) blocks(t table, slot int, what string, footerStart int64) ([]Block, error) {
	start, n, err := v.vector(t, slot, 24, "footer "+what+" blocks")
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]Block, n) // n*24 bytes of footer hold them
	for i := range out {
		p := start + 24*uint64(i)
		b := Block{Offset: v.i64(p), Meta: int32(v.u32(p + 8)), Body: v.i64(p + 16)}
		if b.Offset < 8 || b.Meta < 8 || b.Body < 0 || b.Offset > footerStart ||
			int64(b.Meta) > footerStart-b.Offset || b.Body > footerStart-b.Offset-int64(b.Meta) {
			return nil, v.invalid("%s block %d (offset %d, metadata %d bytes, body %d bytes) lies outside the %d bytes before the footer",
				what, i, b.Offset, b.Meta, b.Body, footerStart)
		}
		out[i] = b
	}
	return out, nil
}

// CheckRecordBatch checks record batch i of the file in data (which may
// have changed since CheckFile: it is read again). A reader of the file
// (arrow-go's) finds the batch through the footer in data, so the footer
// must still be the one checked.
func (f *File) CheckRecordBatch(data []byte, i int) error {
	if i < 0 || i >= len(f.RecordBatches) {
		return fmt.Errorf("%w: no record batch %d (the file has %d)", ErrInvalid, i, len(f.RecordBatches))
	}
	end := f.footerStart + int64(len(f.footer))
	if end > int64(len(data)) {
		return fmt.Errorf("%w: record batch block %d: the footer lies past the end of the %d-byte file (was it truncated?)", ErrInvalid, i, len(data))
	}
	if !bytes.Equal(data[f.footerStart:end], f.footer) {
		return fmt.Errorf("%w: record batch block %d: the footer is not the one checked when the file was opened (was the file rewritten?)", ErrInvalid, i)
	}
	_, err := f.check(data, f.RecordBatches[i], KindRecordBatch, fmt.Sprintf("record batch block %d", i))
	return err
}

// RecordBatchRows checks record batch i of the file in data, as
// CheckRecordBatch does, and returns its row count, read from its
// metadata: the body is not read.
func (f *File) RecordBatchRows(data []byte, i int) (int64, error) {
	if err := f.CheckRecordBatch(data, i); err != nil {
		return 0, err
	}
	b := f.RecordBatches[i]
	meta := data[b.Offset : b.Offset+int64(b.Meta)]
	prefix := 4
	if binary.LittleEndian.Uint32(meta) == 0xFFFFFFFF {
		prefix = 8
	}
	where := fmt.Sprintf("record batch block %d", i)
	v := &verifier{b: meta[prefix:], lim: &f.lim, where: where}
	t, err := v.root("message")
	if err != nil {
		return 0, err
	}
	h, ok, err := v.subtable(t, 2, "message header")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, v.invalid("message has no header")
	}
	rows, _, err := v.scalar8(h, 0, "record batch length")
	return rows, err
}

// check checks the message of block b, which must be of kind want.
func (f *File) check(data []byte, b Block, want Kind, where string) (int64, error) {
	if b.Offset+int64(b.Meta)+b.Body > int64(len(data)) {
		return 0, fmt.Errorf("%w: %s lies past the end of the %d-byte file (was it truncated?)", ErrInvalid, where, len(data))
	}
	meta := data[b.Offset : b.Offset+int64(b.Meta)]
	prefix := 4
	if binary.LittleEndian.Uint32(meta) == 0xFFFFFFFF {
		prefix = 8
	}
	if n := int64(binary.LittleEndian.Uint32(meta[prefix-4:])); n != int64(b.Meta)-int64(prefix) {
		return 0, fmt.Errorf("%w: %s: its metadata says %d bytes, the footer %d", ErrInvalid, where, n, int64(b.Meta)-int64(prefix))
	}
	body := data[b.Offset+int64(b.Meta) : b.Offset+int64(b.Meta)+b.Body]
	kind, n, err := Message(meta[prefix:], body, f.lim, where)
	if err != nil {
		return 0, err
	}
	if kind != want {
		return 0, fmt.Errorf("%w: %s is a %s, not a %s", ErrInvalid, where, kind, want)
	}
	return n, nil
}

// CheckSerializedSchema checks a schema serialized as the start of an IPC
// stream (what Parquet files written from Arrow keep under ARROW:schema):
// an optional continuation marker, the metadata length, the schema
// message.
func CheckSerializedSchema(b []byte, lim Limits) error {
	prefix := 4
	if len(b) >= 4 && binary.LittleEndian.Uint32(b) == 0xFFFFFFFF {
		prefix = 8
	}
	if len(b) < prefix {
		return fmt.Errorf("%w: serialized schema of %d bytes is too short", ErrInvalid, len(b))
	}
	n := int64(binary.LittleEndian.Uint32(b[prefix-4:]))
	if n > int64(len(b)-prefix) {
		return fmt.Errorf("%w: serialized schema claims %d bytes of metadata, %d follow", ErrInvalid, n, len(b)-prefix)
	}
	kind, _, err := Message(b[prefix:int64(prefix)+n], nil, lim, "serialized schema")
	if err != nil {
		return err
	}
	if kind != KindSchema {
		return fmt.Errorf("%w: serialized schema holds a %s", ErrInvalid, kind)
	}
	return nil
}
