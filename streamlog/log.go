package streamlog

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/quiverdata/quiver/internal/durable"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/value"
)

// Dir is the directory under the data root that holds the stream logs.
const Dir = "_stream"

const manifestDir = "_manifests"

// NoOffset marks events without a source offset (pushed rows).
const NoOffset = -1

// Event is one logged event: its values, one per schema field in schema
// order (nil for null), with the Go types value.AppendArrow takes.
type Event struct {
	Values []any
	Time   time.Time // the event time (the timestamp field's value)
	Offset int64     // the source offset, or NoOffset
}

// Batch is what one Append logs: events of one stream partition, offsets
// ascending (or all NoOffset).
type Batch struct {
	Stream    string // the Kafka topic, or "push"
	Partition int32
	Events    []Event
}

// Manifest is a batch's commit record.
type Manifest struct {
	Batch       string    `json:"batch"`
	Stream      string    `json:"stream"`
	Partition   int32     `json:"partition"`
	FirstOffset int64     `json:"first_offset"`
	LastOffset  int64     `json:"last_offset"`
	Files       []File    `json:"files"`
	Committed   time.Time `json:"committed"`
}

// File is one Parquet file of a batch.
type File struct {
	Path    string    `json:"path"` // relative to the view's directory
	Rows    int64     `json:"rows"`
	MinTime time.Time `json:"min_time"`
	MaxTime time.Time `json:"max_time"`
}

// Position is a stream partition.
type Position struct {
	Stream    string
	Partition int32
}

// Log is one stream view's log.
type Log struct {
	dir    string
	view   string
	fields []*registry.Field
	schema *arrow.Schema
	// writerProps: Snappy, and dictionaries only for string and bytes
	// columns. Numbers and times of a batch rarely repeat, and building
	// their dictionaries cost a tenth of the stream's CPU.
	writerProps []parquet.WriterProperty
	mu          sync.Mutex // guards dir creation

	// bucket is set for a log on object storage (see objects.go); prefix
	// is then the key of the view's directory, ending in "/", and dir is
	// unused.
	bucket storage.Bucket
	prefix string
}

// ViewDir returns the directory of a view's log under a data root.
func ViewDir(dataRoot, view string) string { return filepath.Join(dataRoot, Dir, view) }

// checkLocal refuses a data root on object storage to the functions that
// take a local directory only; OpenStore, ReadManifests and Objects take
// both.
func checkLocal(dataRoot, view string) error {
	if strings.Contains(dataRoot, "://") {
		return fmt.Errorf("stream log of view %s: %s is on object storage, which needs the storage settings: open the log through a storage.Store", view, dataRoot)
	}
	return nil
}

// Open returns the log of a view whose source declares fields, below a
// local data root. OpenStore opens one below either kind of root.
func Open(dataRoot, view string, fields []*registry.Field) (*Log, error) {
	if err := checkLocal(dataRoot, view); err != nil {
		return nil, err
	}
	l, err := newLog(view, fields)
	if err != nil {
		return nil, err
	}
	l.dir = ViewDir(dataRoot, view)
	if err := os.MkdirAll(filepath.Join(l.dir, manifestDir), 0o755); err != nil {
		return nil, fmt.Errorf("stream log of view %s: %w", view, err)
	}
	return l, nil
}

// newLog returns a log's schema and writer settings, without a place.
func newLog(view string, fields []*registry.Field) (*Log, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("stream log of view %s: the source declares no schema", view)
	}
	afs := make([]arrow.Field, len(fields))
	for i, f := range fields {
		afs[i] = arrow.Field{Name: f.Name, Type: value.ArrowType(f.Type), Nullable: true}
	}
	l := &Log{view: view, fields: fields, schema: arrow.NewSchema(afs, nil),
		writerProps: []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(false)}}
	for _, f := range fields {
		if !f.Type.List && (f.Type.Elem == registry.String || f.Type.Elem == registry.Bytes) {
			l.writerProps = append(l.writerProps, parquet.WithDictionaryFor(f.Name, true))
		}
	}
	return l, nil
}

// Schema returns the Arrow schema of the log's files.
func (l *Log) Schema() *arrow.Schema { return l.schema }

// batchName names a batch so that a partition's batches sort by offset.
func batchName(b *Batch) (string, error) {
	first, last := b.Events[0].Offset, b.Events[len(b.Events)-1].Offset
	if first >= 0 {
		return fmt.Sprintf("%s-p%05d-%020d-%020d", b.Stream, b.Partition, first, last), nil
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s-p%05d-t%020d-%s", b.Stream, b.Partition, time.Now().UnixNano(), hex.EncodeToString(r[:])), nil
}

// parseBatchName reads the position and last offset from a Kafka batch's
// name; ok is false for other batches.
func parseBatchName(name string) (pos Position, last int64, ok bool) {
	// <stream>-pNNNNN-<20 digits>-<20 digits>
	const tail = 1 + 6 + 1 + 20 + 1 + 20
	if len(name) <= tail || name[len(name)-tail] != '-' || name[len(name)-tail+1] != 'p' {
		return pos, 0, false
	}
	rest := name[len(name)-tail+2:]
	p, err1 := strconv.ParseInt(rest[:5], 10, 32)
	_, err2 := strconv.ParseInt(rest[6:26], 10, 64)
	l, err3 := strconv.ParseInt(rest[27:], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || rest[5] != '-' || rest[26] != '-' {
		return pos, 0, false
	}
	return Position{Stream: name[:len(name)-tail], Partition: int32(p)}, l, true
}

// Append logs a batch durably and returns its manifest. Events are split
// into one file per event date. It is Prepare and Commit in one.
func (l *Log) Append(b Batch) (*Manifest, error) {
	p, err := l.Prepare(b)
	if err != nil {
		return nil, err
	}
	m, err := p.Commit()
	if err != nil {
		_ = p.Abort() // the commit error is the one to report; Recover removes leftovers
		return nil, err
	}
	return m, nil
}

// Prepared is a batch whose files are written and synced but not yet
// committed: no manifest names them, so no reader sees them. Commit makes
// it visible, Abort removes it. A Prepared is used by one goroutine.
type Prepared struct {
	l     *Log
	m     *Manifest
	dirs  map[string]bool
	paths []string
}

// Prepare writes a batch's files durably without committing them: a
// batch that another sink refuses can still be dropped (Abort) with no
// trace in the log. Every event time must be within registry.MinTime and
// registry.MaxTime; a zero Time is an event without one (its timestamp
// value is null), which the offline engine skips. A batch without events prepares to nil, and nil
// commits and aborts to nothing.
func (l *Log) Prepare(b Batch) (*Prepared, error) {
	if len(b.Events) == 0 {
		return nil, nil
	}
	for i := range b.Events {
		if b.Events[i].Time.IsZero() {
			continue
		}
		if err := registry.CheckTime(b.Events[i].Time); err != nil {
			return nil, fmt.Errorf("stream log of view %s: event %d (offset %d): %w", l.view, i, b.Events[i].Offset, err)
		}
	}
	name, err := batchName(&b)
	if err != nil {
		return nil, err
	}
	p := &Prepared{l: l, dirs: map[string]bool{}, m: &Manifest{Batch: name, Stream: b.Stream, Partition: b.Partition,
		FirstOffset: b.Events[0].Offset, LastOffset: b.Events[len(b.Events)-1].Offset}}
	byDate := map[string][]int{}
	var dates []string
	for i, ev := range b.Events {
		d := "date=" + ev.Time.UTC().Format(time.DateOnly)
		if _, ok := byDate[d]; !ok {
			dates = append(dates, d)
		}
		byDate[d] = append(byDate[d], i)
	}
	slices.Sort(dates)
	if l.bucket != nil {
		return l.prepareObjects(p, b.Events, dates, byDate)
	}
	for i, d := range dates {
		rel := filepath.Join(d, fmt.Sprintf("%s-%d.parquet", name, i))
		f, err := l.writeFile(rel, b.Events, byDate[d])
		if err != nil {
			_ = p.Abort() // the write error is the one to report
			return nil, fmt.Errorf("stream log of view %s: %w", l.view, err)
		}
		p.m.Files = append(p.m.Files, f)
		p.paths = append(p.paths, filepath.Join(l.dir, rel))
		p.dirs[filepath.Join(l.dir, d)] = true
	}
	for d := range p.dirs {
		if err := durable.SyncDir(d); err != nil {
			_ = p.Abort()
			return nil, err
		}
	}
	return p, nil
}

// Commit writes the batch's manifest durably, which makes its files part
// of the log, and returns the manifest.
func (p *Prepared) Commit() (*Manifest, error) {
	if p == nil {
		return nil, nil
	}
	l, m := p.l, p.m
	m.Committed = time.Now().UTC()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("stream log of view %s: manifest: %w", l.view, err)
	}
	if l.bucket != nil {
		return p.commitObject(data)
	}
	mdir := filepath.Join(l.dir, manifestDir)
	// The manifest's name is the commit: WriteFile syncs the directory.
	if err := durable.WriteFile(filepath.Join(mdir, m.Batch+".json"), 0o666, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	}); err != nil {
		return nil, fmt.Errorf("stream log of view %s: manifest: %w", l.view, err)
	}
	p.paths = nil // committed: Abort leaves the files alone
	return m, nil
}

// Abort removes the files of a batch that was not committed. Files it
// cannot remove are invisible all the same, and Recover removes them.
func (p *Prepared) Abort() error {
	if p == nil {
		return nil
	}
	if p.l.bucket != nil {
		return p.abortObjects()
	}
	var errs []error
	for _, path := range p.paths {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	p.paths = nil
	return errors.Join(errs...)
}

// record builds the record of the events at rows and describes it as
// the file rel.
func (l *Log) record(rel string, events []Event, rows []int) (arrow.RecordBatch, File, error) {
	out := File{Path: filepath.ToSlash(rel), Rows: int64(len(rows))}
	b := array.NewRecordBuilder(memory.DefaultAllocator, l.schema)
	defer b.Release()
	for _, r := range rows {
		ev := &events[r]
		if len(ev.Values) != len(l.fields) {
			return nil, out, fmt.Errorf("event at offset %d has %d values for %d fields", ev.Offset, len(ev.Values), len(l.fields))
		}
		for i, v := range ev.Values {
			value.AppendArrow(b.Field(i), v)
		}
		t := ev.Time.UTC()
		if out.MinTime.IsZero() || t.Before(out.MinTime) {
			out.MinTime = t
		}
		if t.After(out.MaxTime) {
			out.MaxTime = t
		}
	}
	return b.NewRecordBatch(), out, nil
}

// encode writes rec as one Parquet file to w.
func (l *Log) encode(w io.Writer, rec arrow.RecordBatch) error {
	// The writer closes a sink that is an io.Closer; the caller closes w.
	fw, err := pqarrow.NewFileWriter(l.schema, struct{ io.Writer }{w},
		parquet.NewWriterProperties(l.writerProps...),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return err
	}
	if err := fw.Write(rec); err != nil {
		_ = fw.Close() // the write error is the one to report
		return err
	}
	return fw.Close()
}

// writeFile writes the events at rows to the Parquet file rel.
func (l *Log) writeFile(rel string, events []Event, rows []int) (File, error) {
	rec, out, err := l.record(rel, events, rows)
	if err != nil {
		return out, err
	}
	defer rec.Release()
	path := filepath.Join(l.dir, rel)
	l.mu.Lock()
	err = os.MkdirAll(filepath.Dir(path), 0o755)
	l.mu.Unlock()
	if err != nil {
		return out, err
	}
	// Prepare syncs the directories of a batch's files once they are all
	// written.
	// The file is synced and closed by durable.
	err = durable.WriteFileNoDirSync(path, 0o666, func(f *os.File) error { return l.encode(f, rec) })
	return out, err
}

// Offsets returns, per stream partition, the last source offset the log
// holds. It reads the manifests' names only.
func (l *Log) Offsets() (map[Position]int64, error) {
	var names []string
	if l.bucket != nil {
		objs, err := l.bucket.List(context.Background(), l.prefix+manifestDir+"/")
		if err != nil {
			return nil, fmt.Errorf("stream log of view %s: %w", l.view, err)
		}
		for _, o := range objs {
			names = append(names, path.Base(o.Key))
		}
	} else {
		entries, err := os.ReadDir(filepath.Join(l.dir, manifestDir))
		if err != nil {
			return nil, fmt.Errorf("stream log of view %s: %w", l.view, err)
		}
		for _, e := range entries {
			names = append(names, e.Name())
		}
	}
	out := map[Position]int64{}
	for _, n := range names {
		name, ok := strings.CutSuffix(n, ".json")
		if !ok {
			continue
		}
		pos, last, ok := parseBatchName(name)
		if !ok {
			continue
		}
		if have, seen := out[pos]; !seen || last > have {
			out[pos] = last
		}
	}
	return out, nil
}

// Manifests returns the view's committed manifests in batch-name order.
func Manifests(dataRoot, view string) ([]*Manifest, error) {
	if err := checkLocal(dataRoot, view); err != nil {
		return nil, err
	}
	dir := filepath.Join(ViewDir(dataRoot, view), manifestDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream log of view %s: %w", view, err)
	}
	var out []*Manifest
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("stream log of view %s: %w", view, err)
		}
		m, err := decodeManifest(e.Name(), data)
		if err != nil {
			return nil, fmt.Errorf("stream log of view %s: %w", view, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// decodeManifest reads the manifest in the file name. Its batch is the
// file's name, and the files it names are Parquet files under the view's
// directory: readers open them, so a manifest must not lead them out.
func decodeManifest(name string, data []byte) (*Manifest, error) {
	m := new(Manifest)
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", registry.Clip(name), err)
	}
	if want := strings.TrimSuffix(name, ".json"); m.Batch != want {
		return nil, fmt.Errorf("manifest %s: batch %q is not the file's name", registry.Clip(name), registry.Clip(m.Batch))
	}
	for i, f := range m.Files {
		if !strings.HasSuffix(f.Path, ".parquet") || !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			return nil, fmt.Errorf("manifest %s: files[%d]: path %q is not a Parquet file under the view's directory", registry.Clip(name), i, registry.Clip(f.Path))
		}
		if f.Rows < 0 {
			return nil, fmt.Errorf("manifest %s: files[%d]: %d rows", registry.Clip(name), i, f.Rows)
		}
	}
	return m, nil
}

// Files returns the absolute paths of the view's committed Parquet files,
// in lexical order of their paths (by date, then batch), which is the
// log's source order. A view nothing was logged for has none.
func Files(dataRoot, view string) ([]string, error) {
	ms, err := Manifests(dataRoot, view)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(ViewDir(dataRoot, view))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		for _, f := range m.Files {
			out = append(out, filepath.Join(dir, filepath.FromSlash(f.Path)))
		}
	}
	slices.SortFunc(out, cmp.Compare)
	return out, nil
}

// Recover removes what a crash left behind: temporary files, and Parquet
// files that no manifest names, when they are older than grace (younger
// ones may belong to a batch another process is committing right now).
func (l *Log) Recover(grace time.Duration) (removed int, err error) {
	if l.bucket != nil {
		return l.recoverObjects(grace)
	}
	ms, err := Manifests(filepath.Dir(filepath.Dir(l.dir)), l.view)
	if err != nil {
		return 0, err
	}
	named := map[string]bool{}
	for _, m := range ms {
		for _, f := range m.Files {
			named[filepath.Join(l.dir, filepath.FromSlash(f.Path))] = true
		}
	}
	cutoff := time.Now().Add(-grace)
	err = filepath.WalkDir(l.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		orphan := strings.HasSuffix(path, durable.TempSuffix) || strings.HasSuffix(path, ".parquet") && !named[path]
		if !orphan {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.ModTime().After(cutoff) {
			return err
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("recover stream log of view %s: %w", l.view, err)
	}
	return removed, nil
}
