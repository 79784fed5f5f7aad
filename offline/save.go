package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiverdata/quiver/internal/durable"
	"github.com/quiverdata/quiver/value"
)

// Dataset formats, as DatasetFormat names them.
const (
	// FormatArrow is an Arrow IPC file (.arrow, .arrows, .feather, .ipc).
	FormatArrow = "arrow"
	// FormatParquet is a Parquet file (.parquet).
	FormatParquet = "parquet"
)

// SaveBatchRows bounds the rows of each record batch of an Arrow file and
// of each row group of a Parquet file that Save writes, so that a saved
// set can be split into ranges of them for parallel readers.
const SaveBatchRows = 64 << 10

// DatasetFormat tells how a saved dataset is stored, from its name:
// FormatArrow for .arrow, .arrows, .feather and .ipc, FormatParquet for
// .parquet (in any case), "" for anything else.
func DatasetFormat(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".arrow", ".arrows", ".feather", ".ipc":
		return FormatArrow
	case ".parquet":
		return FormatParquet
	}
	return ""
}

// DatasetFormats lists the extensions DatasetFormat knows, for messages.
const DatasetFormats = "a Parquet file (.parquet) or an Arrow IPC file (.arrow, .arrows, .feather, .ipc)"

// SaveOptions configure a Save.
type SaveOptions struct {
	// Overwrite replaces a file already at the path (default false: Save
	// fails with an error wrapping fs.ErrExist, and the file is kept).
	Overwrite bool
	// Progress, when set, is called with the rows written so far after
	// each batch of an Arrow file (a Parquet file written by DuckDB
	// reports nothing until it is done). It runs on Save's goroutine.
	Progress func(rows int64)
}

// SaveResult describes a saved training set.
type SaveResult struct {
	// Rows is the number of rows written.
	Rows int64
	// Bytes is the size of the file.
	Bytes int64
	// Format is FormatArrow or FormatParquet.
	Format string
	// ETag is the stored object's entity tag when the set was saved to
	// object storage (an s3:// URI); empty for a local file.
	ETag string
}

// Save builds the training set into a file at path, in the format its
// extension names (DatasetFormat): an Arrow IPC file of record batches of
// at most SaveBatchRows rows (larger batches of the join are sliced, not
// copied; consecutive small ones are merged up to SaveBatchRows rows or
// 8 MiB), or a zstd Parquet file of row groups of at most SaveBatchRows
// rows. The file is written to a temporary name beside path, synced and
// moved into place (the directory synced too; package internal/durable),
// so path never holds a partial file, after a crash as well; on any
// failure the temporary file is removed. Without opts.Overwrite an
// existing file is an error wrapping fs.ErrExist, checked again when the
// file is moved into place, so that concurrent saves of one path do not
// replace each other. path's directory must exist.
//
// An s3:// path is built into a local temporary file the same way and
// then uploaded (storage.Bucket.Put: one PUT below the store's part size,
// a multipart upload above it, visible only once complete); on any
// failure no object is left and neither is the temporary file. Without
// opts.Overwrite a set smaller than the part size is created with
// PutIfAbsent, atomically among concurrent savers; a larger one is
// refused when a Stat finds the key taken before the build and again
// before the upload, and two concurrent saves of one new key may then
// both succeed, the last to complete winning (docs/storage.md).
func (e *Engine) Save(ctx context.Context, req *Request, path string, opts SaveOptions) (SaveResult, error) {
	format := DatasetFormat(path)
	if format == "" {
		return SaveResult{}, fmt.Errorf("%w: save training set to %s: the name's extension says no format; want %s", ErrInvalidRequest, path, DatasetFormats)
	}
	if isRemote(path) {
		return e.saveObject(ctx, req, path, format, opts)
	}
	return e.save(ctx, req, path, format, opts)
}

// save is Save in the given format.
func (e *Engine) save(ctx context.Context, req *Request, path, format string, opts SaveOptions) (res SaveResult, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return SaveResult{}, err
	}
	if !opts.Overwrite {
		if _, err := os.Lstat(abs); err == nil {
			return SaveResult{}, fmt.Errorf("save training set to %s: %w", path, fs.ErrExist)
		}
	}
	tmp := durable.TempName(abs)
	defer func() {
		if err == nil {
			return
		}
		// Whatever failed, nothing is left behind under the temporary name
		// (after a successful move there is nothing there to remove).
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove temporary file: %w", rerr))
		}
	}()
	n, err := e.build(ctx, req, tmp, path, format, true, opts.Progress)
	if err != nil {
		return SaveResult{}, err
	}
	if opts.Overwrite {
		err = durable.Publish(tmp, abs)
	} else {
		err = durable.PublishExclusive(tmp, abs)
	}
	if err != nil {
		return SaveResult{}, fmt.Errorf("write training set to %s: %w", path, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return SaveResult{}, fmt.Errorf("write training set to %s: %w", path, err)
	}
	return SaveResult{Rows: n, Bytes: st.Size(), Format: format}, nil
}

// build writes the training set into a new file at tmp, in format; path
// names the destination in messages. shared says tmp is where a cluster
// engine may write it itself (beside the destination, not a local
// staging file).
func (e *Engine) build(ctx context.Context, req *Request, tmp, path, format string, shared bool, progress func(int64)) (int64, error) {
	s, sres, err := e.prepare(ctx, req)
	if err != nil {
		return 0, err
	}
	var n int64
	if format == FormatArrow {
		n, err = writeArrowFile(ctx, s, sres, tmp, progress)
	} else {
		n, err = writeParquet(ctx, s, sres, tmp, shared)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("write training set to %s: %w", path, err)
	}
	return n, nil
}

// writeArrowFile writes the training set to a new Arrow IPC file at tmp.
func writeArrowFile(ctx context.Context, s session, res *resolved, tmp string, progress func(int64)) (rows int64, err error) {
	rr, err := run(ctx, s, res)
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := fh.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	return writeArrow(ctx, rr, func(s *arrow.Schema) (ArrowWriter, error) {
		return ipc.NewFileWriter(fh, ipc.WithSchema(s))
	}, progress)
}

// ArrowWriter is an Arrow IPC stream or file writer.
type ArrowWriter interface {
	Write(arrow.RecordBatch) error
	Close() error
}

// WriteArrow builds the training set and writes it through the writer
// newWriter makes for its schema (an Arrow IPC stream or file writer), in
// batches of at most SaveBatchRows rows: larger batches of the join are
// sliced, not copied, and empty ones skipped. It closes the writer, and
// calls progress (when set) with the rows written after each batch. It
// returns the rows written.
func (e *Engine) WriteArrow(ctx context.Context, req *Request, newWriter func(*arrow.Schema) (ArrowWriter, error), progress func(rows int64)) (rows int64, err error) {
	rr, err := e.TrainingSet(ctx, req)
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	return writeArrow(ctx, rr, newWriter, progress)
}

// saveBatchBytes bounds the bytes of a batch that Save makes by merging
// smaller ones, so that a saved batch stays well within a Flight message.
const saveBatchBytes = 8 << 20

// writeArrow is WriteArrow over a built training set. The join's batches
// are sliced to at most SaveBatchRows rows, and consecutive small ones
// (DuckDB's are 2,048 rows) are merged up to SaveBatchRows rows or
// saveBatchBytes, so that readers of the file get few large batches.
func writeArrow(ctx context.Context, rr array.RecordReader, newWriter func(*arrow.Schema) (ArrowWriter, error), progress func(rows int64)) (rows int64, err error) {
	w, err := newWriter(rr.Schema())
	if err != nil {
		return 0, err
	}
	m := merger{schema: rr.Schema(), write: w.Write}
	defer func() {
		m.release()
		if cerr := w.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write arrow: %w", cerr)
		}
	}()
	for rr.Next() {
		if err := ctx.Err(); err != nil {
			return rows, err
		}
		rec := rr.RecordBatch()
		n := rec.NumRows()
		for lo := int64(0); lo < n; lo += SaveBatchRows {
			hi := min(lo+SaveBatchRows, n)
			part := rec
			if lo > 0 || hi < n {
				part = rec.NewSlice(lo, hi)
			} else {
				part.Retain()
			}
			if err := m.add(part); err != nil {
				return rows, fmt.Errorf("write arrow: %w", err)
			}
			rows += hi - lo
		}
		if progress != nil {
			progress(rows)
		}
	}
	if err := rr.Err(); err != nil {
		return rows, err
	}
	if err := m.flush(); err != nil {
		return rows, fmt.Errorf("write arrow: %w", err)
	}
	return rows, nil
}

// merger gathers consecutive batches and writes them as one, up to
// SaveBatchRows rows and saveBatchBytes.
type merger struct {
	schema      *arrow.Schema
	write       func(arrow.RecordBatch) error
	pending     []arrow.RecordBatch
	rows, bytes int64
}

// add takes over rec (its reference).
func (m *merger) add(rec arrow.RecordBatch) error {
	size := value.BatchBytes(rec)
	if len(m.pending) > 0 && (m.rows+rec.NumRows() > SaveBatchRows || m.bytes+size > saveBatchBytes) {
		if err := m.flush(); err != nil {
			rec.Release()
			return err
		}
	}
	m.pending = append(m.pending, rec)
	m.rows += rec.NumRows()
	m.bytes += size
	return nil
}

// flush writes the pending batches as one batch (the batch itself when
// there is one, else their columns concatenated).
func (m *merger) flush() error {
	if len(m.pending) == 0 {
		return nil
	}
	defer m.release()
	if len(m.pending) == 1 {
		return m.write(m.pending[0])
	}
	cols := make([]arrow.Array, m.schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	parts := make([]arrow.Array, len(m.pending))
	for i := range cols {
		for j, rec := range m.pending {
			parts[j] = rec.Column(i)
		}
		c, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			return fmt.Errorf("merge batches: column %s: %w", m.schema.Field(i).Name, err)
		}
		cols[i] = c
	}
	rec := array.NewRecordBatch(m.schema, cols, m.rows)
	defer rec.Release()
	return m.write(rec)
}

// release drops the pending batches.
func (m *merger) release() {
	for _, rec := range m.pending {
		rec.Release()
	}
	m.pending, m.rows, m.bytes = m.pending[:0], 0, 0
}

// clusterWriter is a session whose engine can write a Parquet result
// file itself, where the client sees it (the Spark engine).
type clusterWriter interface {
	// writeOnCluster writes the rendered query's result to a new Parquet
	// file at path, returning the number of rows; ok false means this
	// session's engine streams it instead.
	writeOnCluster(ctx context.Context, path string) (rows int64, ok bool, err error)
}

// writeParquet writes the prepared training set to a new zstd Parquet
// file at tmp, in row groups of at most SaveBatchRows rows: through
// DuckDB's COPY, by the cluster when tmp is shared with it, or, when
// on-demand columns are computed in Go, through a Parquet writer. It
// closes the session.
func writeParquet(ctx context.Context, s session, res *resolved, tmp string, shared bool) (int64, error) {
	if len(res.demands) > 0 {
		rr, err := run(ctx, s, res)
		if err != nil {
			return 0, err
		}
		defer rr.Release()
		return writeParquetFile(ctx, rr, tmp)
	}
	defer s.close()
	if cw, ok := s.(clusterWriter); ok && shared {
		if n, ok, err := cw.writeOnCluster(ctx, tmp); ok || err != nil {
			return n, err
		}
	}
	return s.copyParquet(ctx, tmp)
}
