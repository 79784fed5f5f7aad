package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/plan"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/value"
	"github.com/quiverdata/quiver/wire"
)

// FlightService serves training sets and online features over Arrow
// Flight. Requests run in parallel, each on its own DuckDB connection or
// lookup, and stop when the client cancels.
type FlightService struct {
	flight.BaseFlightServer
	offline  *offline.Engine
	lookup   *online.Lookup
	snapshot func() *registry.Snapshot
	dataRoot string
	// remoteRoot: dataRoot is an s3:// URI; entity paths and saved
	// datasets name objects below it.
	remoteRoot bool
	limits     Limits
	ipc        IPCLimits
	mem        memory.Allocator
	// slots bounds the training sets built at once; more wait their turn,
	// counted in waiting.
	slots   chan struct{}
	waiting atomic.Int64
	// plans are the dataset schemas' request plans.
	plans plan.Cache
	// feast holds the entity tables of Feast's DoPut → DoGet flow
	// (feast_flight.go).
	feast       *feastUploads
	feastLimits FeastUploadLimits
	feastNow    func() time.Time
}

// IPCLimits bound the Arrow IPC the Flight service decodes: each entity
// stream a client sends to DoExchange, and each saved dataset. Zero fields
// take the defaults: metadata 4 MiB per message, bodies 64 MiB per message
// and 2 GiB per stream (decoded), 10,000 fields nesting at most 32 deep,
// 16,777,216 rows per batch.
type IPCLimits = ipcguard.Limits

// FlightOption configures a FlightService.
type FlightOption func(*FlightService)

// WithIPCLimits sets the limits on the Arrow IPC the service decodes.
func WithIPCLimits(l IPCLimits) FlightOption {
	return func(f *FlightService) { f.ipc = l }
}

// WithAllocator sets the allocator of the batches the service decodes and
// builds (default memory.DefaultAllocator).
func WithAllocator(mem memory.Allocator) FlightOption {
	return func(f *FlightService) { f.mem = mem }
}

// NewFlightService returns the service. dataRoot bounds the entity paths
// tickets may name; snapshot gives the registry version per request.
func NewFlightService(off *offline.Engine, lookup *online.Lookup, snapshot func() *registry.Snapshot, dataRoot string, limits Limits, opts ...FlightOption) (*FlightService, error) {
	root, remote := strings.TrimRight(dataRoot, "/"), strings.Contains(dataRoot, "://")
	if !remote {
		var err error
		if root, err = filepath.Abs(dataRoot); err != nil {
			return nil, err
		}
	}
	limits.ensureDefaults()
	f := &FlightService{offline: off, lookup: lookup, snapshot: snapshot, dataRoot: root, remoteRoot: remote, limits: limits,
		mem: memory.DefaultAllocator, slots: make(chan struct{}, limits.MaxConcurrentTrainingSets)}
	for _, o := range opts {
		o(f)
	}
	f.ipc.EnsureDefaults()
	f.feast = newFeastUploads(f.feastLimits, f.feastNow)
	return f, nil
}

// acquire takes a free training-set slot, or waits for one; release it
// when done.
func (f *FlightService) acquire(ctx context.Context) (release func(), err error) {
	select {
	case f.slots <- struct{}{}:
		return func() { <-f.slots }, nil
	default:
	}
	f.waiting.Add(1)
	defer f.waiting.Add(-1)
	select {
	case f.slots <- struct{}{}:
		return func() { <-f.slots }, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func flightInvalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func flightNotFound(format string, args ...any) error {
	return status.Errorf(codes.NotFound, format, args...)
}

func trainingRequest(c *wire.FlightCommand, defs *registry.Definitions, ents offline.Entities) *offline.Request {
	return &offline.Request{Defs: defs, Entities: ents, Features: c.Features, FeatureService: c.FeatureService,
		FullFeatureNames: c.FullFeatureNames, TimestampColumn: c.TimestampColumn, JoinKeyMap: c.JoinKeyMap, AsOf: c.AsOfTime(), AsOfColumn: c.AsOfColumn}
}

// ticketEntities is the entity table of a ticket's or an action's
// training_set command: its spine, or the entity files it names, confined
// to the data root (what names the call in messages).
func (f *FlightService) ticketEntities(cmd *wire.FlightCommand, what string) (offline.Entities, error) {
	if sp := cmd.Spine; sp != nil {
		spine := offline.Spine{View: sp.View}
		spine.Start, _ = time.Parse(time.RFC3339Nano, sp.Start) // checked when decoded
		spine.End, _ = time.Parse(time.RFC3339Nano, sp.End)
		if sp.Every != "" {
			d, err := registry.ParseDuration(sp.Every)
			if err != nil || d.Std() <= 0 {
				return offline.Entities{}, flightInvalid("spine every %q is not a positive duration (e.g. 1h, 15m, 1d)", sp.Every)
			}
			spine.Every = d.Std()
		}
		return offline.EntitiesFromSpine(spine), nil
	}
	if cmd.Entities == "" {
		return offline.Entities{}, flightInvalid("%sthe command names no entities (a Parquet file or glob within the data root, or a spine)", what)
	}
	files, err := f.entityFiles(cmd.Entities)
	if err != nil {
		return offline.Entities{}, err
	}
	return f.entitiesOf(files), nil
}

// globChars are the characters a path may use as a glob pattern (Go's
// filepath.Match, which the service expands itself; DuckDB is given the
// files it matched, never a pattern).
const globChars = "*?["

// rootPath resolves a command's path (what: "entities" or "dataset")
// within the data root and returns the file it names, its symbolic links
// resolved; paths that lead out of the root are refused, and so are files
// that do not exist.
func (f *FlightService) rootPath(what, p string) (string, error) {
	if p == "" {
		return "", flightInvalid("the command names no %s (a path within the data root)", what)
	}
	if f.remoteRoot {
		// Callers resolve paths below an s3:// root with remoteURI.
		return "", status.Errorf(codes.Internal, "%s %q: the data root is on object storage", what, p)
	}
	abs := p
	if !filepath.IsAbs(p) {
		abs = filepath.Join(f.dataRoot, p)
	}
	abs = filepath.Clean(abs)
	if !within(f.dataRoot, abs) {
		return "", flightInvalid("%s %q is outside the data root", what, p)
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, os.ErrNotExist) {
		return "", flightNotFound("no %s %q in the data root (ticket paths are relative to the data root)", what, p)
	}
	if err != nil {
		return "", flightInvalid("%s %q: %v", what, p, err)
	}
	// A symbolic link inside the root must not lead out of it.
	if !within(f.realRoot(), real) {
		return "", flightInvalid("%s %q leads outside the data root", what, p)
	}
	return real, nil
}

// entityFiles expands a ticket's entities (a Parquet file or a glob of
// them, relative to the data root) into the files it names, in lexical
// order, each confined to the root after its symbolic links are resolved.
func (f *FlightService) entityFiles(p string) ([]string, error) {
	if f.remoteRoot {
		return f.remoteEntities(p)
	}
	if !strings.ContainsAny(p, globChars) {
		real, err := f.rootPath("entities", p)
		if err != nil {
			return nil, err
		}
		return []string{real}, nil
	}
	if strings.Contains(p, "**") {
		return nil, flightInvalid("entities %q: ** is not a glob here (use * within one directory)", p)
	}
	pattern := p
	if !filepath.IsAbs(p) {
		pattern = filepath.Join(f.dataRoot, p)
	}
	pattern = filepath.Clean(pattern)
	if !within(f.dataRoot, pattern) {
		return nil, flightInvalid("entities %q is outside the data root", p)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil, flightInvalid("entities %q is not a valid glob: %v", p, err)
	}
	if len(matches) == 0 {
		return nil, flightNotFound("no file in the data root matches entities %q", p)
	}
	root := f.realRoot()
	files := make([]string, 0, len(matches))
	for _, m := range matches {
		real, err := filepath.EvalSymlinks(m)
		if err != nil {
			return nil, flightInvalid("entities %q: %v", p, err)
		}
		rel, _ := filepath.Rel(f.dataRoot, m)
		if !within(root, real) {
			return nil, flightInvalid("entities %q: %s leads outside the data root", p, rel)
		}
		if st, err := os.Stat(real); err != nil || !st.Mode().IsRegular() {
			return nil, flightInvalid("entities %q: %s is not a regular file", p, rel)
		}
		if strings.ContainsAny(real, globChars+"{") {
			return nil, flightInvalid("entities %q: the name of %s holds glob characters; name the file without them", p, rel)
		}
		files = append(files, real)
	}
	return files, nil
}

// remoteEntities confines a ticket's entities (an object or a glob of
// them, relative to an s3:// data root) to the root: the URI it names,
// which the engine lists in key order.
func (f *FlightService) remoteEntities(p string) ([]string, error) {
	if err := checkRemotePath("entities", p); err != nil {
		return nil, err
	}
	if err := storage.CheckGlob(p); err != nil {
		return nil, flightInvalid("entities %q: %s", p, strings.TrimPrefix(err.Error(), storage.ErrInvalid.Error()+": "))
	}
	return []string{f.dataRoot + "/" + p}, nil
}

// entitiesOf is the entity table of what entityFiles returned: the files
// it matched, or the URI below an s3:// data root.
func (f *FlightService) entitiesOf(files []string) offline.Entities {
	if f.remoteRoot {
		return offline.EntitiesFromParquet(files[0])
	}
	return offline.EntitiesFromParquetFiles(files)
}

// checkRemotePath checks a path (what: "entities", "dataset" or "out")
// below an s3:// data root: relative, without empty, "." or ".."
// segments, so that the key it makes stays below the root's prefix.
func checkRemotePath(what, p string) error {
	if p == "" {
		return flightInvalid("the command names no %s (a path within the data root)", what)
	}
	if strings.Contains(p, "://") || strings.HasPrefix(p, "/") {
		return flightInvalid("%s %q: name a path relative to the data root", what, p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return flightInvalid("%s %q: a path within the data root has no empty, \".\" or \"..\" segment", what, p)
		}
	}
	return nil
}

// remoteURI is the object a dataset or out path names below an s3://
// data root; it must name one object, not a glob.
func (f *FlightService) remoteURI(what, p string) (string, error) {
	if err := checkRemotePath(what, p); err != nil {
		return "", err
	}
	if storage.IsGlob(p) {
		return "", flightInvalid("%s %q names one object; it holds glob characters (%s)", what, p, globChars)
	}
	return f.dataRoot + "/" + p, nil
}

// realRoot is the data root with its symbolic links resolved (resolved per
// request: the root may be created, or moved, after the service starts).
func (f *FlightService) realRoot() string {
	if real, err := filepath.EvalSymlinks(f.dataRoot); err == nil {
		return real
	}
	return f.dataRoot
}

// within reports whether path is root or below it (both clean and
// absolute).
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// ticketTrainingSet opens the training set a ticket or descriptor names.
func (f *FlightService) ticketTrainingSet(ctx context.Context, cmdBytes []byte) (array.RecordReader, error) {
	cmd, ents, err := f.ticketCommand(cmdBytes)
	if err != nil {
		return nil, err
	}
	rr, err := f.offline.TrainingSet(ctx, trainingRequest(cmd, f.snapshot().Defs, ents))
	if err != nil {
		return nil, grpcError(err)
	}
	return rr, nil
}

// ticketCommand parses a ticket or descriptor naming a training set over
// entity files (which it expands and confines to the data root) or a
// spine, or a dataset.
func (f *FlightService) ticketCommand(cmdBytes []byte) (*wire.FlightCommand, offline.Entities, error) {
	cmd, err := wire.DecodeFlightCommand(cmdBytes)
	if err != nil {
		return nil, offline.Entities{}, flightInvalid("%v", err)
	}
	if cmd.Kind != wire.FlightTrainingSet && cmd.Kind != wire.FlightDataset {
		return nil, offline.Entities{}, flightInvalid("a ticket names a training set or a dataset; %q streams its entities with DoExchange", cmd.Kind)
	}
	if err := outMisplaced(cmd); err != nil {
		return nil, offline.Entities{}, err
	}
	if cmd.Kind == wire.FlightDataset {
		return cmd, offline.Entities{}, nil
	}
	ents, err := f.ticketEntities(cmd, "")
	return cmd, ents, err
}

// DoGet streams the training set or the saved dataset a ticket names.
func (f *FlightService) DoGet(t *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	if isFeastCommand(t.GetTicket()) {
		return f.feastGet(t.GetTicket(), stream)
	}
	if cmd, err := wire.DecodeFlightCommand(t.GetTicket()); err == nil && cmd.Kind == wire.FlightDataset {
		// A saved dataset runs no join and takes no training-set slot.
		d, err := f.openDataset(stream.Context(), cmd.Path, datasetOpen{populate: true, rng: cmd.Range, version: cmd.Version})
		if err != nil {
			return err
		}
		defer d.rr.Release()
		return d.run(func() error { return sendAll(stream, d.rr) })
	}
	release, err := f.acquire(stream.Context())
	if err != nil {
		return err
	}
	defer release()
	rr, err := f.ticketTrainingSet(stream.Context(), t.GetTicket())
	if err != nil {
		return err
	}
	defer rr.Release()
	return sendAll(stream, rr)
}

// sendAll writes every batch of rr to the stream; gRPC flow control holds
// the producer back when the client reads slowly.
func sendAll(stream flight.DataStreamWriter, rr array.RecordReader) error {
	w := flight.NewRecordWriter(stream, ipc.WithSchema(rr.Schema()))
	for rr.Next() {
		if err := w.Write(rr.RecordBatch()); err != nil {
			_ = w.Close() // the send error is the one to report
			return err
		}
	}
	if err := rr.Err(); err != nil {
		_ = w.Close() // the read error is the one to report
		return grpcError(err)
	}
	return w.Close()
}

// DoExchange takes the entity stream of a training set or of a batch of
// online lookups, named by the first message's descriptor cmd.
//
// Every message of the client's stream is checked (ipcguard) before it is
// decoded, and every decoded batch before it is read.
func (f *FlightService) DoExchange(stream flight.FlightService_DoExchangeServer) error {
	rd, raw, err := f.commandStream(stream)
	if err != nil {
		return err
	}
	defer rd.Release()
	if isFeastCommand(raw) {
		return f.feastExchange(stream, rd, raw)
	}
	cmd, err := wire.DecodeFlightCommand(raw)
	if err != nil {
		return flightInvalid("%v", err)
	}
	if cmd.Entities != "" || cmd.Spine != nil {
		return flightInvalid("DoExchange reads the entities from the stream; a path or a spine belongs in a DoGet ticket")
	}
	if err := outMisplaced(cmd); err != nil {
		return err
	}
	snap := f.snapshot()
	if cmd.Kind == wire.FlightOnlineFeatures {
		if f.lookup == nil {
			return status.Error(codes.Unimplemented, "this server has no online store")
		}
		return f.exchangeOnline(stream, &checkedReader{Reader: rd}, snap, cmd)
	}
	release, err := f.acquire(stream.Context())
	if err != nil {
		return err
	}
	defer release()
	rr, err := f.offline.TrainingSet(stream.Context(), trainingRequest(cmd, snap.Defs, offline.EntitiesFromArrow(&checkedReader{Reader: rd})))
	if err != nil {
		if ctx := stream.Context(); ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return grpcError(err)
	}
	defer rr.Release()
	return sendAll(stream, rr)
}

// commandStream reads a client's stream of record batches (DoExchange,
// DoPut), each message checked (ipcguard) before it is decoded, and gives
// the command of its first message's CMD descriptor.
func (f *FlightService) commandStream(stream interface {
	flight.DataStreamReader
	Context() context.Context
}) (*flight.Reader, []byte, error) {
	rd, err := flight.NewRecordReader(ipcguard.NewFlightStream(stream, f.ipc), ipc.WithAllocator(f.mem))
	if err != nil {
		return nil, nil, streamError(stream.Context(), err)
	}
	desc := rd.LatestFlightDescriptor()
	if desc == nil || desc.GetType() != flight.DescriptorCMD {
		rd.Release()
		return nil, nil, flightInvalid("the first message needs a CMD descriptor holding a Quiver Flight command")
	}
	return rd, desc.GetCmd(), nil
}

// exchangeOnline answers each entity batch with a batch of the entity
// columns and the online values (null unless PRESENT), in chunks of at
// most MaxEntities rows per lookup.
func (f *FlightService) exchangeOnline(stream flight.FlightService_DoExchangeServer, rd *checkedReader, snap *registry.Snapshot, cmd *wire.FlightCommand) error {
	ctx := stream.Context()
	var w *flight.Writer
	defer func() {
		if w != nil {
			_ = w.Close() // closing ends the stream; errors were reported by Write
		}
	}()
	for rd.Next() {
		rec := rd.RecordBatch()
		rows := int(rec.NumRows())
		cols := map[string][]any{}
		for i, fld := range rec.Schema().Fields() {
			// Columns of other types are carried through but cannot be
			// join keys or request fields.
			if vals, err := columnValues(rec.Column(i)); err == nil {
				cols[fld.Name] = vals
			}
		}
		var out []arrow.RecordBatch
		for lo := 0; lo < rows; lo += f.limits.MaxEntities {
			hi := min(lo+f.limits.MaxEntities, rows)
			part := online.Request{Features: cmd.Features, FeatureService: cmd.FeatureService, FullFeatureNames: cmd.FullFeatureNames,
				Entities: map[string][]any{}, RequestContext: map[string][]any{}}
			for name, vals := range cols {
				part.Entities[name] = vals[lo:hi]
				part.RequestContext[name] = vals[lo:hi]
			}
			resp, err := f.lookup.Get(ctx, snap.Defs, &part)
			if err != nil {
				releaseAll(out) // the batches built before this chunk
				return grpcError(err)
			}
			out = append(out, onlineBatch(f.mem, rec, lo, hi, resp))
		}
		for i, b := range out {
			if w == nil {
				w = flight.NewRecordWriter(stream, ipc.WithSchema(b.Schema()))
			}
			err := w.Write(b)
			b.Release()
			if err != nil {
				releaseAll(out[i+1:])
				return err
			}
		}
	}
	if err := rd.Err(); err != nil {
		return streamError(ctx, err)
	}
	return nil
}

// releaseAll releases batches.
func releaseAll(batches []arrow.RecordBatch) {
	for _, b := range batches {
		b.Release()
	}
}

// checkedReader reads a client's decoded entity stream, checking each
// batch against its buffers (ipcguard.ValidateRecord) before it is read:
// DuckDB reads the buffers over the C data interface without bounds
// checks.
type checkedReader struct {
	*flight.Reader
	err error
}

func (r *checkedReader) Next() bool {
	if r.err != nil || !r.Reader.Next() {
		return false
	}
	if err := ipcguard.ValidateRecord(r.Reader.RecordBatch()); err != nil {
		r.err = err
		return false
	}
	return true
}

// Err is the error that ended the stream. arrow-go's own decode errors
// (it recovers its panics on malformed input) are the client's input too:
// they wrap ipcguard.ErrInvalid, so they map to InvalidArgument.
func (r *checkedReader) Err() error {
	if r.err != nil {
		return r.err
	}
	err := r.Reader.Err()
	var grpcErr interface{ GRPCStatus() *status.Status }
	if err == nil || ipcguard.IsGuardError(err) || errors.As(err, &grpcErr) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: decode the entity stream: %w", ipcguard.ErrInvalid, err)
}

// streamError reports a failed read of the client's stream: the client's
// own cancellation, a message over a limit, or a stream that is not Arrow
// IPC.
func streamError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if errors.Is(err, ipcguard.ErrLimit) {
		return status.Errorf(codes.ResourceExhausted, "read the entity stream: %v", err)
	}
	if errors.Is(err, io.EOF) {
		return flightInvalid("the client sent no entity stream (a schema message with the command's descriptor comes first)")
	}
	return flightInvalid("read the entity stream: %v", err)
}

// columnValues reads an entity or request column as Go values.
func columnValues(a arrow.Array) ([]any, error) {
	if _, nested := a.DataType().(arrow.NestedType); nested {
		// Never a join key or a request field (both scalars): carried
		// through without converting it row by row.
		return nil, fmt.Errorf("arrow type %s is not a scalar", a.DataType())
	}
	out := make([]any, a.Len())
	for i := range out {
		v, err := value.FromArrow(a, i)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w (join keys are int64 or string; request fields as their declared type)", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// onlineBatch builds rows [lo, hi) of the entity batch followed by the
// features' values.
func onlineBatch(mem memory.Allocator, ents arrow.RecordBatch, lo, hi int, resp *online.Response) arrow.RecordBatch {
	fields := append([]arrow.Field{}, ents.Schema().Fields()...)
	cols := make([]arrow.Array, 0, len(fields)+len(resp.Features))
	for i := range ents.Schema().Fields() {
		cols = append(cols, array.NewSlice(ents.Column(i), int64(lo), int64(hi)))
	}
	for i := range resp.Features {
		fv := &resp.Features[i]
		fields = append(fields, arrow.Field{Name: fv.Name, Type: value.ArrowType(fv.Type), Nullable: true})
		b := array.NewBuilder(mem, value.ArrowType(fv.Type))
		for r := range resp.Rows {
			value.AppendArrow(b, fv.Value(r))
		}
		cols = append(cols, b.NewArray())
		b.Release()
	}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(hi-lo))
}

// datasetSchema is the Arrow schema of a feature view or service as a
// dataset: the join keys of its stored views, the event timestamp, then
// its features (by feature name; the plan is made with full names so that
// a service's features of one name in two views are apart).
func datasetSchema(plans *plan.Cache, defs *registry.Definitions, refs []string) (*arrow.Schema, error) {
	p, err := plans.Get(defs, plan.Request{Features: refs, FullFeatureNames: true})
	if err != nil {
		return nil, err
	}
	var fields []arrow.Field
	seen := map[string]bool{}
	for _, v := range p.Views {
		if v.Features[0].Column >= p.Requested {
			continue // read only for an on-demand view's inputs
		}
		for _, k := range v.Keys {
			if !seen[k.Name] {
				seen[k.Name] = true
				fields = append(fields, arrow.Field{Name: k.Name, Type: value.ArrowType(k.Type)})
			}
		}
	}
	fields = append(fields, arrow.Field{Name: offline.DefaultTimestampColumn, Type: value.ArrowType(registry.TypeTimestamp)})
	for _, c := range p.Columns[:p.Requested] {
		fields = append(fields, arrow.Field{Name: c.Feature, Type: value.ArrowType(c.Type), Nullable: true})
	}
	return arrow.NewSchema(fields, nil), nil
}

// datasets lists the feature views, on-demand views and feature services
// as PATH descriptors with their schemas.
func datasets(plans *plan.Cache, defs *registry.Definitions) ([]*flight.FlightInfo, error) {
	var out []*flight.FlightInfo
	add := func(kind, name string, refs []string) error {
		sch, err := datasetSchema(plans, defs, refs)
		if err != nil {
			return err
		}
		out = append(out, &flight.FlightInfo{Schema: flight.SerializeSchema(sch, memory.DefaultAllocator),
			FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{kind, name}},
			TotalRecords:     -1, TotalBytes: -1})
		return nil
	}
	for _, v := range defs.FeatureViews {
		if err := add("feature_view", v.Name, []string{v.Name + ":*"}); err != nil {
			return nil, err
		}
	}
	for _, v := range defs.OnDemandViews {
		if err := add("on_demand_feature_view", v.Name, []string{v.Name + ":*"}); err != nil {
			return nil, err
		}
	}
	for _, s := range defs.FeatureServices {
		if err := add("feature_service", s.Name, s.Features); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ListFlights lists the registry's views and services as datasets.
func (f *FlightService) ListFlights(_ *flight.Criteria, stream flight.FlightService_ListFlightsServer) error {
	infos, err := datasets(&f.plans, f.snapshot().Defs)
	if err != nil {
		return grpcError(err)
	}
	for _, info := range infos {
		if err := stream.Send(info); err != nil {
			return err
		}
	}
	return nil
}

// flightInfo describes a PATH dataset, or a CMD training set with the
// ticket that fetches it.
func (f *FlightService) flightInfo(ctx context.Context, d *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	switch d.GetType() {
	case flight.DescriptorPATH:
		infos, err := datasets(&f.plans, f.snapshot().Defs)
		if err != nil {
			return nil, grpcError(err)
		}
		for _, info := range infos {
			if strings.Join(info.FlightDescriptor.Path, "/") == strings.Join(d.GetPath(), "/") {
				return info, nil
			}
		}
		return nil, status.Errorf(codes.NotFound, "no dataset %q (paths are feature_view/NAME, on_demand_feature_view/NAME, feature_service/NAME)", strings.Join(d.GetPath(), "/"))
	case flight.DescriptorCMD:
		if isFeastCommand(d.GetCmd()) {
			return f.feastInfo(d)
		}
		cmd, ents, err := f.ticketCommand(d.GetCmd())
		if err != nil {
			return nil, err
		}
		if cmd.Kind == wire.FlightDataset {
			return f.datasetInfo(ctx, d, cmd)
		}
		sch, err := f.trainingSetSchema(ctx, cmd, ents)
		if err != nil {
			return nil, grpcError(err)
		}
		return &flight.FlightInfo{Schema: flight.SerializeSchema(sch, memory.DefaultAllocator), FlightDescriptor: d,
			Endpoint:     []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: d.GetCmd()}}},
			TotalRecords: -1, TotalBytes: -1}, nil
	}
	return nil, flightInvalid("descriptor type %v is not supported", d.GetType())
}

// trainingSetSchema describes a training set; loading its entity table
// takes a training-set slot like building it.
func (f *FlightService) trainingSetSchema(ctx context.Context, cmd *wire.FlightCommand, ents offline.Entities) (*arrow.Schema, error) {
	release, err := f.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return f.offline.TrainingSetSchema(ctx, trainingRequest(cmd, f.snapshot().Defs, ents))
}

// GetFlightInfo implements Flight.
func (f *FlightService) GetFlightInfo(ctx context.Context, d *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return f.flightInfo(ctx, d)
}

// GetSchema implements Flight.
func (f *FlightService) GetSchema(ctx context.Context, d *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	info, err := f.flightInfo(ctx, d)
	if err != nil {
		return nil, err
	}
	return &flight.SchemaResult{Schema: info.Schema}, nil
}
