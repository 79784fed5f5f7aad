package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// datasetBatchRows is the batch size a Parquet dataset is read in; an
// Arrow IPC file keeps the batches it was written with.
const datasetBatchRows = 64 * 1024

// DatasetFormat tells how a saved dataset is stored, from its name:
// "arrow" for an Arrow IPC file (.arrow, .arrows, .feather, .ipc),
// "parquet" for .parquet, "" for anything else.
func DatasetFormat(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".arrow", ".arrows", ".feather", ".ipc":
		return "arrow"
	case ".parquet":
		return "parquet"
	}
	return ""
}

// openDataset opens a saved dataset within the data root as a stream of
// its record batches. No join runs: the file is served as stored. whole
// says the caller reads every batch, so an Arrow file's mapping is faulted
// in at once; a caller after the schema alone maps it lazily.
func (f *FlightService) openDataset(ctx context.Context, rel string, whole bool) (array.RecordReader, error) {
	path, err := f.rootPath("dataset", rel)
	if err != nil {
		return nil, err
	}
	format := DatasetFormat(path)
	if format == "" {
		return nil, flightInvalid("dataset %q is neither an Arrow IPC file (.arrow, .feather) nor Parquet (.parquet)", rel)
	}
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, flightNotFound("no dataset %q in the data root", rel)
	}
	if err != nil {
		return nil, flightError(fmt.Errorf("open dataset %s: %w", rel, err))
	}
	if format == "arrow" {
		data, unmap, err := mapFile(fh, whole)
		_ = fh.Close() // the mapping outlives the descriptor
		if err != nil {
			return nil, flightError(fmt.Errorf("open dataset %s: %w", rel, err))
		}
		r, err := ipc.NewMappedFileReader(data, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			_ = unmap() // the format error is the one to report
			return nil, flightInvalid("dataset %q is not an Arrow IPC file: %v", rel, err)
		}
		return &ipcFileReader{unmap: unmap, r: r, refs: 1}, nil
	}
	pf, err := file.NewParquetReader(fh)
	if err != nil {
		_ = fh.Close() // the format error is the one to report
		return nil, flightInvalid("dataset %q is not a Parquet file: %v", rel, err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: datasetBatchRows, Parallel: true}, memory.DefaultAllocator)
	if err != nil {
		_ = pf.Close()
		return nil, flightInvalid("dataset %q: %v", rel, err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		_ = pf.Close()
		return nil, flightInvalid("dataset %q: %v", rel, err)
	}
	return &closingReader{RecordReader: rr, close: pf.Close}, nil
}

// datasetSchemaOf reads a saved dataset's schema from its footer.
func (f *FlightService) datasetSchemaOf(ctx context.Context, rel string) (*arrow.Schema, error) {
	rr, err := f.openDataset(ctx, rel, false)
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	return rr.Schema(), nil
}

// ipcFileReader is an array.RecordReader over the batches of a mapped
// Arrow IPC file, which unmaps it when released. Its batches point into
// the mapping: they are valid until the next Next or Release.
type ipcFileReader struct {
	unmap func() error
	r     *ipc.FileReader
	next  int
	cur   arrow.RecordBatch
	err   error
	refs  int
}

func (r *ipcFileReader) Retain()                        { r.refs++ }
func (r *ipcFileReader) Schema() *arrow.Schema          { return r.r.Schema() }
func (r *ipcFileReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record is RecordBatch (array.RecordReader asks for both).
func (r *ipcFileReader) Record() arrow.RecordBatch { return r.cur }
func (r *ipcFileReader) Err() error                { return r.err }

func (r *ipcFileReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.err != nil || r.next >= r.r.NumRecords() {
		return false
	}
	rec, err := r.r.RecordBatchAt(r.next)
	if err != nil {
		r.err = fmt.Errorf("read batch %d: %w", r.next, err)
		return false
	}
	r.next++
	r.cur = rec
	return true
}

func (r *ipcFileReader) Release() {
	if r.refs--; r.refs > 0 {
		return
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	_ = r.r.Close() // reading is done; nothing was written
	_ = r.unmap()   // read-only
}

// closingReader releases a record reader and then closes what it reads.
type closingReader struct {
	array.RecordReader
	close  func() error
	closed bool
}

func (c *closingReader) Release() {
	c.RecordReader.Release()
	if !c.closed {
		c.closed = true
		_ = c.close() // read-only
	}
}
