// Package refreader is the one reference-counted wrapper of an Arrow
// record reader that owns something besides the reader: a file, a memory
// map, a database connection.
//
// A Reader starts with one reference. Retain and Release are atomic, so
// references may be taken and dropped on any goroutine; the last Release
// releases the wrapped reader and then runs close, exactly once. Releasing
// more often than retaining panics, as it does for arrow-go's own readers.
package refreader

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// Reader is an array.RecordReader that runs close after its last Release.
type Reader struct {
	array.RecordReader
	close func() error
	refs  atomic.Int64
	// onClose, when set, is told close's error (tests, logs).
	onClose func(error)
}

// New wraps rr; close (which may be nil) runs once, after rr's Release, on
// the last Release of the wrapper. The wrapper holds rr's one reference:
// rr must not be released by the caller.
func New(rr array.RecordReader, close func() error) *Reader {
	r := &Reader{RecordReader: rr, close: close}
	r.refs.Store(1)
	return r
}

// OnClose sets a function told the error of close (by default it is
// dropped: the readers wrapped here only read).
func (r *Reader) OnClose(f func(error)) *Reader {
	r.onClose = f
	return r
}

// Retain takes a reference.
func (r *Reader) Retain() { r.refs.Add(1) }

// Release drops a reference; the last releases the reader and closes.
func (r *Reader) Release() {
	switch n := r.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic("refreader: Release called more often than Retain")
	}
	r.RecordReader.Release()
	if r.close == nil {
		return
	}
	err := r.close()
	if r.onClose != nil {
		r.onClose(err)
	}
}
