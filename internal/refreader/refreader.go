// Package refreader holds the reference-counted Arrow record readers that
// the other packages build on, so that none of them counts references on
// its own:
//
//   - Reader wraps a reader that owns something besides itself (a file, a
//     memory map, a database connection) and closes it after the last
//     Release.
//   - Batches produces its batches one at a time from a function; Map is a
//     Batches that transforms another reader batch by batch (adds a column,
//     evaluates expressions, drops internal columns).
//
// The rule is the same for all: a reader starts with one reference; Retain
// and Release are atomic, so references may be taken and dropped on any
// goroutine; the last Release releases what the reader holds (its current
// batch, the reader it wraps) and then runs close, exactly once. Releasing
// more often than retaining panics, as it does for arrow-go's own readers.
// Next, RecordBatch and Err are not safe for concurrent use, as with any
// array.RecordReader: one goroutine reads.
package refreader

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// Reader is an array.RecordReader that runs close after its last Release.
type Reader struct {
	array.RecordReader
	close func() error
	refs  refs
	// onClose, when set, is told close's error (tests, logs).
	onClose func(error)
}

// New wraps rr; close (which may be nil) runs once, after rr's Release, on
// the last Release of the wrapper. The wrapper holds rr's one reference:
// rr must not be released by the caller.
func New(rr array.RecordReader, close func() error) *Reader {
	r := &Reader{RecordReader: rr, close: close}
	r.refs.init()
	return r
}

// OnClose sets a function told the error of close (by default it is
// dropped: the readers wrapped here only read).
func (r *Reader) OnClose(f func(error)) *Reader {
	r.onClose = f
	return r
}

// Retain takes a reference.
func (r *Reader) Retain() { r.refs.retain() }

// Release drops a reference; the last releases the reader and closes.
func (r *Reader) Release() {
	if !r.refs.release() {
		return
	}
	r.RecordReader.Release()
	runClose(r.close, r.onClose)
}

// refs is the reference count of every reader here.
type refs struct{ n atomic.Int64 }

func (c *refs) init()   { c.n.Store(1) }
func (c *refs) retain() { c.n.Add(1) }

// release drops a reference and reports whether it was the last.
func (c *refs) release() bool {
	switch n := c.n.Add(-1); {
	case n > 0:
		return false
	case n < 0:
		panic("refreader: Release called more often than Retain")
	}
	return true
}

// runClose runs close, when set, and tells onClose, when set, its error.
func runClose(close func() error, onClose func(error)) {
	if close == nil {
		return
	}
	err := close()
	if onClose != nil {
		onClose(err)
	}
}
