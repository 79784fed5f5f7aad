package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/internal/mmapfile"
	"github.com/quiverdata/quiver/internal/objcache"
	"github.com/quiverdata/quiver/internal/refreader"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/wire"
)

// datasetBatchRows is the batch size a Parquet dataset is read in; an
// Arrow IPC file keeps the batches it was written with.
const datasetBatchRows = 64 * 1024

// maxDatasetEndpoints bounds the endpoints of a dataset's FlightInfo:
// one per unit (record batch or row group) up to this many units, beyond
// that this many ranges of near-equal rows.
const maxDatasetEndpoints = 64

// dataset is a saved dataset open for reading: its reader, the file as it
// was when opened, the memory map an Arrow file is read from, and its
// units (the record batches of an Arrow file, the row groups of a
// Parquet file).
type dataset struct {
	rel, path string
	info      os.FileInfo
	// version is the dataset's identity (datasetVersion, objectVersion),
	// which its tickets carry.
	version string
	mapped  []byte
	rr      array.RecordReader
	// unit names the units in messages: "record batches" or "row groups".
	unit string
	// units is the number of units; unitRows their rows, when asked for.
	units    int
	unitRows []int64
}

// datasetOpen says how to open a dataset.
type datasetOpen struct {
	// populate faults an Arrow file's mapping in at once: the caller reads
	// every batch. A caller after the schema or a range maps it lazily.
	populate bool
	// rng is the half-open range of units to stream; nil for all.
	rng []int64
	// version, when set, must be the dataset's (datasetVersion, objectVersion); one that
	// changed since is refused with Aborted.
	version string
	// rows counts each unit's rows into unitRows (from metadata only).
	rows bool
}

// objectVersion is a dataset object's identity, from the store: its size
// and ETag, "<size>-<ETag>". A replaced object has a new ETag, unless the
// very same bytes were put again in one PUT (S3's ETag of a PUT is the
// MD5 of its body), which is the same dataset.
func objectVersion(info storage.ObjectInfo) string {
	return fmt.Sprintf("%d-%s", info.Size, info.ETag)
}

// datasetVersion is a dataset file's identity: its size and modification
// time, "<size>-<mtime in Unix nanoseconds>". Save and rename give a
// replaced file a new one.
func datasetVersion(info os.FileInfo) string {
	return fmt.Sprintf("%d-%d", info.Size(), info.ModTime().UnixNano())
}

// openDataset opens a saved dataset within the data root as a stream of
// its record batches, all of them or the range o.rng of its units. No
// join runs: the file is served as stored. An Arrow file's footer,
// dictionaries and each batch are checked (ipcguard) before they are
// decoded; a Parquet file's embedded Arrow schema too.
//
// Under an s3:// data root the object is staged first (stageDataset) and
// its local copy served the same way; its version is the object's.
func (f *FlightService) openDataset(ctx context.Context, rel string, o datasetOpen) (_ *dataset, err error) {
	format := offline.DatasetFormat(rel)
	if format == "" {
		return nil, flightInvalid("dataset %q is neither an Arrow IPC file (.arrow, .feather) nor Parquet (.parquet)", rel)
	}
	var src datasetFile
	if f.remoteRoot {
		src, err = f.openStagedDataset(ctx, rel, o.version)
	} else {
		src, err = f.openLocalDataset(rel, o.version)
	}
	if err != nil {
		return nil, err
	}
	fh, info, path, version, release := src.fh, src.info, src.path, src.version, src.release
	// The staged copy is held until the reader is released, or until
	// opening fails.
	defer func() {
		if err != nil {
			release()
		}
	}()
	d := &dataset{rel: rel, path: path, info: info, version: version}
	if format == offline.FormatArrow {
		data, unmapFile, err := mmapfile.Map(fh, info.Size(), o.populate && o.rng == nil)
		_ = fh.Close() // the mapping outlives the descriptor
		if err != nil {
			return nil, grpcError(fmt.Errorf("open dataset %s: %w", rel, err))
		}
		unmap := func() error {
			defer release()
			return unmapFile()
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
		d.unit, d.units = "record batches", r.NumRecords()
		lo, hi, err := d.span(o.rng)
		if err == nil && o.rows {
			err = d.run(func() error {
				for i := range d.units {
					n, err := r.RecordBatchRows(i)
					if err != nil {
						return grpcError(fmt.Errorf("dataset %q: %w", rel, err))
					}
					d.unitRows = append(d.unitRows, n)
				}
				return nil
			})
		}
		if err != nil {
			_ = r.Close() // nothing was written
			_ = unmap()   // the range or format error is the one to report
			return nil, err
		}
		d.rr = ipcFileReader(r, lo, hi, unmap)
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
	d.unit, d.units = "row groups", pf.NumRowGroups()
	lo, hi, err := d.span(o.rng)
	if err != nil {
		_ = pf.Close()
		return nil, err
	}
	if o.rows {
		for i := range d.units {
			d.unitRows = append(d.unitRows, pf.MetaData().RowGroup(i).NumRows())
		}
	}
	var groups []int // nil: all of them
	if o.rng != nil {
		for i := lo; i < hi; i++ {
			groups = append(groups, i)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: datasetBatchRows, Parallel: true}, f.mem)
	if err != nil {
		_ = pf.Close()
		return nil, flightInvalid("dataset %q: %v", rel, err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, groups)
	if err != nil {
		_ = pf.Close()
		return nil, flightInvalid("dataset %q: %v", rel, err)
	}
	d.rr = refreader.New(rr, func() error {
		defer release()
		return pf.Close()
	})
	return d, nil
}

// stageAttempts bounds how often a dataset object replaced between its
// Stat and its download is looked up again.
const stageAttempts = 3

// stageDataset stats the dataset object rel names below an s3:// data
// root and returns a held copy of it from the engine's object cache
// (downloaded unless the cache has that version), with its version
// (objectVersion). When want is set, an object whose version is no longer
// want is refused with Aborted, before anything is downloaded.
func (f *FlightService) stageDataset(ctx context.Context, rel, want string) (*objcache.Entry, string, error) {
	uri, err := f.remoteURI("dataset", rel)
	if err != nil {
		return nil, "", err
	}
	for attempt := 1; ; attempt++ {
		b, info, err := f.offline.StatObject(ctx, uri)
		switch {
		case errors.Is(err, storage.ErrBucketNotFound):
			return nil, "", flightNotFound("no dataset %q: the data root's bucket does not exist (%s)", rel, uri)
		case errors.Is(err, storage.ErrNotFound):
			return nil, "", flightNotFound("no dataset %q in the data root (%s)", rel, uri)
		case err != nil:
			return nil, "", datasetStoreError(ctx, rel, err)
		}
		version := objectVersion(info)
		if want != "" && version != want {
			return nil, "", status.Errorf(codes.Aborted, "dataset %q was replaced since its flight info was read (version %s then, %s now): get its flight info again", rel, want, version)
		}
		en, err := f.offline.FetchObject(ctx, b, info)
		if errors.Is(err, objcache.ErrChanged) && want == "" && attempt < stageAttempts {
			continue // replaced since the Stat: look it up again
		}
		if errors.Is(err, objcache.ErrChanged) || errors.Is(err, storage.ErrNotFound) {
			return nil, "", status.Errorf(codes.Aborted, "dataset %q was replaced while it was fetched: %v", rel, err)
		}
		if err != nil {
			return nil, "", datasetStoreError(ctx, rel, err)
		}
		return en, version, nil
	}
}

// datasetStoreError is a failure of the store while a dataset object is
// looked up or fetched.
func datasetStoreError(ctx context.Context, rel string, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Errorf(errorCode(err), "dataset %q: %v", rel, err)
}

// datasetFile is a dataset's file opened for reading: a file of the data
// root, or the cached copy of an object, held until release.
type datasetFile struct {
	fh            *os.File
	info          os.FileInfo
	path, version string
	release       func()
}

// openLocalDataset opens the dataset file rel names within a local data
// root; a version that is not the file's (want, when set) is Aborted.
func (f *FlightService) openLocalDataset(rel, want string) (datasetFile, error) {
	path, err := f.rootPath("dataset", rel)
	if err != nil {
		return datasetFile{}, err
	}
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return datasetFile{}, flightNotFound("no dataset %q in the data root", rel)
	}
	if err != nil {
		return datasetFile{}, grpcError(fmt.Errorf("open dataset %s: %w", rel, err))
	}
	info, err := fh.Stat()
	if err != nil {
		_ = fh.Close() // read-only
		return datasetFile{}, grpcError(fmt.Errorf("open dataset %s: %w", rel, err))
	}
	if !info.Mode().IsRegular() {
		_ = fh.Close() // read-only
		return datasetFile{}, flightInvalid("dataset %q is not a regular file", rel)
	}
	version := datasetVersion(info)
	if want != "" && version != want {
		_ = fh.Close() // read-only
		return datasetFile{}, status.Errorf(codes.Aborted, "dataset %q changed since its flight info was read (version %s then, %s now): get its flight info again", rel, want, version)
	}
	return datasetFile{fh: fh, info: info, path: path, version: version, release: func() {}}, nil
}

// openStagedDataset opens the cached copy of the dataset object rel names
// below an s3:// data root (stageDataset), held until release.
func (f *FlightService) openStagedDataset(ctx context.Context, rel, want string) (datasetFile, error) {
	en, version, err := f.stageDataset(ctx, rel, want)
	if err != nil {
		return datasetFile{}, err
	}
	fh, err := os.Open(en.Path)
	if err != nil {
		en.Release()
		return datasetFile{}, grpcError(fmt.Errorf("open dataset %s: its cached copy: %w", rel, err))
	}
	info, err := fh.Stat()
	if err != nil {
		_ = fh.Close() // read-only
		en.Release()
		return datasetFile{}, grpcError(fmt.Errorf("open dataset %s: its cached copy: %w", rel, err))
	}
	return datasetFile{fh: fh, info: info, path: en.Path, version: version, release: en.Release}, nil
}

// span checks a ticket's range of units against the dataset's, and
// returns it (all units for none).
func (d *dataset) span(rng []int64) (lo, hi int, err error) {
	if rng == nil {
		return 0, d.units, nil
	}
	if len(rng) != 2 || rng[0] < 0 || rng[0] >= rng[1] || rng[1] > int64(d.units) {
		return 0, 0, flightInvalid("range %v of dataset %q is not within its %d %s: want [start, end] with 0 <= start < end <= %d", rng, d.rel, d.units, d.unit, d.units)
	}
	return int(rng[0]), int(rng[1]), nil
}

// ranges splits the units, whose rows are given, into contiguous
// half-open ranges: one per unit up to max units, beyond that max ranges
// of near-equal rows (each of one unit at least).
func ranges(rows []int64, max int) [][2]int {
	n := len(rows)
	if n <= max {
		out := make([][2]int, n)
		for i := range out {
			out[i] = [2]int{i, i + 1}
		}
		return out
	}
	var total int64
	cum := make([]int64, n+1) // cum[i]: the rows of units [0, i)
	for i, r := range rows {
		total += r
		cum[i+1] = total
	}
	out := make([][2]int, 0, max)
	lo := 0
	for k := 1; k < max; k++ {
		// The first boundary at or past k/max of the rows, leaving each
		// range before and after at least one unit.
		target := total * int64(k) / int64(max)
		hi := lo + 1
		for hi < n && cum[hi] < target {
			hi++
		}
		hi = min(hi, n-(max-k))
		out = append(out, [2]int{lo, hi})
		lo = hi
	}
	return append(out, [2]int{lo, n})
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

// datasetInfo describes a saved dataset: its schema, its rows (from the
// IPC footer and batch metadata, or the Parquet metadata), and its units
// in contiguous ranges (ranges), in order, one endpoint each, whose
// ticket names the range and the file's version and whose app_metadata
// holds the range's rows (wire.DatasetRange).
func (f *FlightService) datasetInfo(ctx context.Context, desc *flight.FlightDescriptor, cmd *wire.FlightCommand) (*flight.FlightInfo, error) {
	if cmd.Range != nil || cmd.Version != "" {
		return nil, flightInvalid("a dataset descriptor names only its path: range and version belong in the tickets of its flight info")
	}
	d, err := f.openDataset(ctx, cmd.Path, datasetOpen{rows: true})
	if err != nil {
		return nil, err
	}
	defer d.rr.Release()
	var sch *arrow.Schema
	if err := d.run(func() error {
		sch = d.rr.Schema()
		return nil
	}); err != nil {
		return nil, err
	}
	version := d.version
	endpoint := func(rng []int64, rows int64) (*flight.FlightEndpoint, error) {
		t, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightDataset, Path: cmd.Path, Range: rng, Version: version})
		if err != nil {
			return nil, err
		}
		meta, err := json.Marshal(wire.DatasetRange{Rows: rows})
		if err != nil {
			return nil, err
		}
		return &flight.FlightEndpoint{Ticket: &flight.Ticket{Ticket: t}, AppMetadata: meta}, nil
	}
	var total int64
	var eps []*flight.FlightEndpoint
	for _, r := range ranges(d.unitRows, maxDatasetEndpoints) {
		var rows int64
		for _, n := range d.unitRows[r[0]:r[1]] {
			rows += n
		}
		total += rows
		ep, err := endpoint([]int64{int64(r[0]), int64(r[1])}, rows)
		if err != nil {
			return nil, grpcError(err)
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		// No units: one endpoint, of the whole file, streams its schema.
		ep, err := endpoint(nil, 0)
		if err != nil {
			return nil, grpcError(err)
		}
		eps = append(eps, ep)
	}
	return &flight.FlightInfo{Schema: flight.SerializeSchema(sch, memory.DefaultAllocator), FlightDescriptor: desc,
		Endpoint: eps, TotalRecords: total, TotalBytes: d.info.Size(), Ordered: true}, nil
}

// ipcFileReader reads batches [lo, hi) of a checked, mapped Arrow IPC
// file. Its batches point into the mapping: they are valid until the next
// Next or the last Release, which closes the file and unmaps it.
func ipcFileReader(r *ipcguard.FileReader, lo, hi int, unmap func() error) *refreader.Batches {
	next := lo
	return refreader.NewBatches(r.Schema(), func() (arrow.RecordBatch, error) {
		if next >= hi {
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
