// Package ipcguard checks Arrow IPC input from outside the process before
// arrow-go decodes it.
//
// arrow-go trusts the counts and lengths in IPC metadata: a schema message
// whose struct field claims a billion children makes it allocate a slice
// of a billion fields, a compressed buffer claiming a terabyte
// uncompressed makes it allocate a terabyte, and a field that is its own
// child recurses until the stack is gone. None of these is a panic that
// recover catches: the process dies. This package walks the flatbuffer
// metadata of each message (and of a file's footer) on the raw bytes and
// refuses it unless
//
//   - every table, vector and string lies within the metadata, so a count
//     can be no larger than the bytes that hold it;
//   - the schema has at most Limits.MaxFields fields in all (nested ones
//     counted, a child shared by several parents counted each time) and
//     nests at most Limits.MaxDepth deep;
//   - names and custom metadata hold no more bytes than the metadata, as
//     decoded, so shared strings cannot multiply;
//   - a record batch's buffers lie within its body, its row counts are at
//     most Limits.MaxBatchRows, its variadic buffer counts are at most its
//     buffers, and what its compressed buffers claim uncompressed is
//     within Limits.MaxMessageBytes;
//   - a stream's bodies, decoded, total at most Limits.MaxStreamBytes;
//   - a file's blocks lie between its magic and its footer.
//
// After decoding, ValidateRecord checks each array against its buffers
// (offsets, bitmaps, child lengths) before the batch is handed to code that
// reads the buffers without bounds checks (DuckDB over the C data
// interface).
//
// Errors wrap ErrInvalid (the input is not well-formed IPC) or ErrLimit
// (it is well-formed but over a limit) and name the message, the field or
// block, and the count at fault.
//
// A Stream is used by one goroutine; Limits and the functions are safe for
// concurrent use.
package ipcguard
