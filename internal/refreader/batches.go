package refreader

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Batches is an array.RecordReader whose batches come one at a time from
// a function. It owns the batch it holds: a batch is valid until the next
// Next or the last Release; a caller that keeps one retains it.
type Batches struct {
	schema  *arrow.Schema
	next    func() (arrow.RecordBatch, error)
	close   func() error
	onClose func(error)
	refs    refs
	cur     arrow.RecordBatch
	err     error
	done    bool
}

var _ array.RecordReader = (*Batches)(nil)

// NewBatches returns a reader of schema whose Next calls next. next
// returns the next batch, whose one reference the reader takes; nil at the
// end; or an error, which ends the reading and is what Err reports. next
// is not called again once it has returned nil or an error. close (which
// may be nil) runs once, after the current batch is released, on the last
// Release.
func NewBatches(schema *arrow.Schema, next func() (arrow.RecordBatch, error), close func() error) *Batches {
	r := &Batches{schema: schema, next: next, close: close}
	r.refs.init()
	return r
}

// Map returns a reader of schema whose batches are fn of in's batches, in
// order. fn is given a batch that is valid for the call only (it retains
// what it keeps: array.NewRecordBatch retains the columns it is given) and
// returns a new batch, whose one reference the reader takes, or nil to skip
// the input batch, or an error, which ends the reading and is what Err
// reports; Err reports in's error too. The reader holds in's one
// reference (the caller must not release in): its last Release releases
// the current batch, then in, then runs close (which may be nil).
func Map(in array.RecordReader, schema *arrow.Schema, fn func(arrow.RecordBatch) (arrow.RecordBatch, error), close func() error) *Batches {
	next := func() (arrow.RecordBatch, error) {
		for in.Next() {
			out, err := fn(in.RecordBatch())
			if err != nil || out != nil {
				return out, err
			}
		}
		return nil, in.Err()
	}
	return NewBatches(schema, next, func() error {
		in.Release()
		if close == nil {
			return nil
		}
		return close()
	})
}

// OnClose sets a function told the error of close (by default it is
// dropped).
func (r *Batches) OnClose(f func(error)) *Batches {
	r.onClose = f
	return r
}

// Schema returns the schema of the reader's batches.
func (r *Batches) Schema() *arrow.Schema { return r.schema }

// Next moves to the next batch, releasing the current one; it returns
// false at the end or on an error (see Err).
func (r *Batches) Next() bool {
	r.releaseCurrent()
	if r.done {
		return false
	}
	rec, err := r.next()
	if err != nil || rec == nil {
		r.err, r.done = err, true
		return false
	}
	r.cur = rec
	return true
}

// RecordBatch returns the current batch, valid until the next Next or the
// last Release.
func (r *Batches) RecordBatch() arrow.RecordBatch { return r.cur }

// Record is RecordBatch (array.RecordReader asks for both).
func (r *Batches) Record() arrow.RecordBatch { return r.cur }

// Err returns the error that ended the reading, if any.
func (r *Batches) Err() error { return r.err }

// Retain takes a reference.
func (r *Batches) Retain() { r.refs.retain() }

// Release drops a reference; the last releases the current batch and
// then runs close.
func (r *Batches) Release() {
	if !r.refs.release() {
		return
	}
	r.releaseCurrent()
	r.done = true
	runClose(r.close, r.onClose)
}

func (r *Batches) releaseCurrent() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}
