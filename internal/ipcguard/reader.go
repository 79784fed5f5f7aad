package ipcguard

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// FlightStream checks each message a Flight stream receives before the
// Flight record reader built on it sees the message.
type FlightStream struct {
	in     flight.DataStreamReader
	stream *Stream
}

// NewFlightStream guards in with lim.
func NewFlightStream(in flight.DataStreamReader, lim Limits) *FlightStream {
	return &FlightStream{in: in, stream: NewStream(lim)}
}

// Recv receives the next message and checks it; a message that fails the
// check is an error of this package, and the stream reads no further.
//
// A message with neither IPC metadata nor body carries no data: Arrow
// C++ and pyarrow open a DoExchange with one that holds only the
// descriptor, and Flight allows ones that hold only app metadata.
// arrow-go's reader cannot decode such a message, so Recv skips it and
// hands its descriptor on with the next message that has none of its
// own (the reader keeps the latest descriptor).
func (s *FlightStream) Recv() (*flight.FlightData, error) {
	var desc *flight.FlightDescriptor
	for {
		fd, err := s.in.Recv()
		if err != nil {
			return nil, err
		}
		if len(fd.GetDataHeader()) == 0 && len(fd.GetDataBody()) == 0 {
			if fd.GetFlightDescriptor() != nil {
				desc = fd.GetFlightDescriptor()
			}
			continue
		}
		if err := s.stream.Check(fd.GetDataHeader(), fd.GetDataBody()); err != nil {
			return nil, err
		}
		if fd.FlightDescriptor == nil {
			fd.FlightDescriptor = desc
		}
		return fd, nil
	}
}

// Bytes is the body bytes, decoded, received so far.
func (s *FlightStream) Bytes() int64 { return s.stream.Bytes() }

// FileReader reads the record batches of an Arrow IPC file held in memory
// (a memory map) after checking its footer, its dictionaries and, just
// before decoding it, each record batch; decoded batches pass
// ValidateRecord. Batches point into data, except those of files with
// dictionaries, which are copied out of it.
type FileReader struct {
	data []byte
	file *File
	r    *ipc.FileReader
}

// NewFileReader checks the file in data and opens it.
func NewFileReader(data []byte, lim Limits, mem memory.Allocator) (fr *FileReader, err error) {
	f, err := CheckFile(data, lim)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			fr, err = nil, fmt.Errorf("%w: decode the footer: %v", ErrInvalid, r)
		}
	}()
	var r *ipc.FileReader
	if len(f.Dictionaries) == 0 {
		r, err = ipc.NewMappedFileReader(data, ipc.WithAllocator(mem))
	} else {
		// arrow-go's mapped reader has no dictionary memo (v18.8.0: it
		// panics on the first dictionary); read such files through
		// copies of their blocks instead.
		r, err = ipc.NewFileReader(bytes.NewReader(data), ipc.WithAllocator(mem))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if r.NumRecords() != len(f.RecordBatches) || r.NumDictionaries() != len(f.Dictionaries) {
		_ = r.Close() // nothing was written
		return nil, fmt.Errorf("%w: the footer changed while it was read", ErrInvalid)
	}
	return &FileReader{data: data, file: f, r: r}, nil
}

// Schema is the file's schema.
func (f *FileReader) Schema() *arrow.Schema { return f.r.Schema() }

// NumRecords is the number of record batches in the file.
func (f *FileReader) NumRecords() int { return len(f.file.RecordBatches) }

// RecordBatchRows checks record batch i and returns its rows, read from
// its metadata without decoding it.
func (f *FileReader) RecordBatchRows(i int) (int64, error) { return f.file.RecordBatchRows(f.data, i) }

// RecordBatchAt checks and decodes record batch i; the caller releases it.
func (f *FileReader) RecordBatchAt(i int) (rec arrow.RecordBatch, err error) {
	if err := f.file.CheckRecordBatch(f.data, i); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			if rec != nil {
				rec.Release()
			}
			rec, err = nil, fmt.Errorf("%w: record batch block %d: %v", ErrInvalid, i, r)
		}
	}()
	rec, err = f.r.RecordBatchAt(i)
	if err != nil {
		return nil, fmt.Errorf("%w: record batch block %d: %w", ErrInvalid, i, err)
	}
	if err := ValidateRecord(rec); err != nil {
		rec.Release()
		return nil, fmt.Errorf("record batch block %d: %w", i, err)
	}
	return rec, nil
}

// Close closes the reader; data stays the caller's.
func (f *FileReader) Close() error { return f.r.Close() }

// IsGuardError reports whether err is one of this package's.
func IsGuardError(err error) bool { return errors.Is(err, ErrInvalid) || errors.Is(err, ErrLimit) }
