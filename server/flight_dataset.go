package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/internal/refreader"
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

// dataset is a saved dataset open for reading: its reader, the file as it
// was when opened, and the memory map an Arrow file is read from.
type dataset struct {
	rel, path string
	info      os.FileInfo
	mapped    []byte
	rr        array.RecordReader
}

// openDataset opens a saved dataset within the data root as a stream of
// its record batches. No join runs: the file is served as stored. whole
// says the caller reads every batch, so an Arrow file's mapping is faulted
// in at once; a caller after the schema alone maps it lazily. An Arrow
// file's footer, dictionaries and each batch are checked (ipcguard) before
// they are decoded; a Parquet file's embedded Arrow schema too.
func (f *FlightService) openDataset(ctx context.Context, rel string, whole bool) (*dataset, error) {
	path, err := f.rootPath("dataset", rel)
	if err != nil {
		return nil, err
	}
	format := DatasetFormat(rel)
	if format == "" {
		return nil, flightInvalid("dataset %q is neither an Arrow IPC file (.arrow, .feather) nor Parquet (.parquet)", rel)
	}
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, flightNotFound("no dataset %q in the data root", rel)
	}
	if err != nil {
		return nil, grpcError(fmt.Errorf("open dataset %s: %w", rel, err))
	}
	info, err := fh.Stat()
	if err != nil {
		_ = fh.Close() // read-only
		return nil, grpcError(fmt.Errorf("open dataset %s: %w", rel, err))
	}
	if !info.Mode().IsRegular() {
		_ = fh.Close() // read-only
		return nil, flightInvalid("dataset %q is not a regular file", rel)
	}
	d := &dataset{rel: rel, path: path, info: info}
	if format == "arrow" {
		data, unmap, err := mapFile(fh, info.Size(), whole)
		_ = fh.Close() // the mapping outlives the descriptor
		if err != nil {
			return nil, grpcError(fmt.Errorf("open dataset %s: %w", rel, err))
		}
		d.mapped = data
		var r *ipcguard.FileReader
		err = d.run(func() error {
			var err error
			r, err = ipcguard.NewFileReader(data, f.ipc, f.mem)
			return err
		})
		if err != nil {
			_ = unmap() // the format error is the one to report
			if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
				return nil, err
			}
			if errors.Is(err, ipcguard.ErrInvalid) {
				return nil, grpcError(fmt.Errorf("dataset %q is not an Arrow IPC file: %w", rel, err))
			}
			return nil, grpcError(fmt.Errorf("dataset %q: %w", rel, err))
		}
		d.rr = ipcFileReader(r, unmap)
		return d, nil
	}
	pf, err := file.NewParquetReader(fh)
	if err != nil {
		_ = fh.Close() // the format error is the one to report
		return nil, flightInvalid("dataset %q is not a Parquet file: %v", rel, err)
	}
	if err := checkParquetArrowSchema(pf, f.ipc); err != nil {
		_ = pf.Close()
		return nil, grpcError(fmt.Errorf("dataset %q: %w", rel, err))
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: datasetBatchRows, Parallel: true}, f.mem)
	if err != nil {
		_ = pf.Close()
		return nil, flightInvalid("dataset %q: %v", rel, err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		_ = pf.Close()
		return nil, flightInvalid("dataset %q: %v", rel, err)
	}
	d.rr = refreader.New(rr, pf.Close)
	return d, nil
}

// checkParquetArrowSchema checks the Arrow schema a Parquet file may embed
// (an IPC schema message, base64, under ARROW:schema), which the Parquet
// reader decodes with arrow-go.
func checkParquetArrowSchema(pf *file.Reader, lim ipcguard.Limits) error {
	v := pf.MetaData().KeyValueMetadata().FindValue("ARROW:schema")
	if v == nil {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(*v)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(*v)
	}
	if err != nil {
		return fmt.Errorf("%w: its ARROW:schema is not base64: %w", ipcguard.ErrInvalid, err)
	}
	return ipcguard.CheckSerializedSchema(raw, lim)
}

// run runs fn, which reads the dataset, with memory faults on its mapping
// turned into an error: a file truncated under its map raises SIGBUS on
// the next read of a page past the new end, which would otherwise kill the
// process. Every read of the mapping happens on the calling goroutine (the
// batches' buffers point into it, and gRPC copies them into the message
// in Send, on the handler's goroutine), so that is where faults are caught.
// Any error of fn is explained by a change of the file when it changed.
func (d *dataset) run(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			if err != nil {
				err = d.explain(err)
			}
			return
		}
		if a, ok := r.(interface{ Addr() uintptr }); ok && d.inMap(a.Addr()) {
			err = d.explain(fmt.Errorf("read dataset %s: memory fault at its mapping", d.rel))
			return
		}
		panic(r)
	}()
	return fn()
}

// inMap reports whether addr lies within the dataset's mapping.
func (d *dataset) inMap(addr uintptr) bool {
	if len(d.mapped) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(d.mapped)))
	return addr >= base && addr < base+uintptr(len(d.mapped))
}

// explain turns a read error into Aborted when the file changed under the
// reader (truncated, rewritten or removed), saying how datasets are
// replaced safely.
func (d *dataset) explain(err error) error {
	now, serr := os.Stat(d.path)
	if serr == nil && os.SameFile(now, d.info) && now.Size() == d.info.Size() && now.ModTime().Equal(d.info.ModTime()) {
		return err
	}
	what := "removed"
	if serr == nil {
		what = fmt.Sprintf("changed in place (%d bytes when opened, %d now)", d.info.Size(), now.Size())
		if !os.SameFile(now, d.info) {
			what = "replaced"
		}
	}
	return status.Errorf(codes.Aborted, "dataset %q was %s while it was read: %v; replace a dataset by writing a new file and renaming it over the old one", d.rel, what, err)
}

// datasetSchemaOf reads a saved dataset's schema from its footer.
func (f *FlightService) datasetSchemaOf(ctx context.Context, rel string) (*arrow.Schema, error) {
	d, err := f.openDataset(ctx, rel, false)
	if err != nil {
		return nil, err
	}
	defer d.rr.Release()
	var sch *arrow.Schema
	err = d.run(func() error {
		sch = d.rr.Schema()
		return nil
	})
	return sch, err
}

// ipcFileReader reads the batches of a checked, mapped Arrow IPC file.
// Its batches point into the mapping: they are valid until the next Next
// or the last Release, which closes the file and unmaps it.
func ipcFileReader(r *ipcguard.FileReader, unmap func() error) *refreader.Batches {
	next := 0
	return refreader.NewBatches(r.Schema(), func() (arrow.RecordBatch, error) {
		if next >= r.NumRecords() {
			return nil, nil
		}
		rec, err := r.RecordBatchAt(next)
		if err != nil {
			return nil, fmt.Errorf("read batch %d: %w", next, err)
		}
		next++
		return rec, nil
	}, func() error {
		_ = r.Close() // reading is done; nothing was written
		return unmap()
	})
}
