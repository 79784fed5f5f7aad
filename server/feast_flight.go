package server

// Feast's remote offline store over Arrow Flight. A Feast client whose
// feature_store.yaml has offline_store {type: remote, host, port} sends
// each offline call as a CMD descriptor holding a JSON object with
// "command_id" (a fresh UUID), "api" (the name of the OfflineStore
// method) and that method's parameters. For get_historical_features they
// are feature_view_names, feature_refs ("view:feature", the on-demand
// views' refs and the refs of their input features included),
// project, full_feature_names, name_aliases and, when the entity table is
// a SQL string, entity_df_sql (start_date/end_date when there is none).
//
// Feast's client reaches the server in one of two ways, and both are
// served:
//   - DoExchange (what Feast's client uses for every read API): the
//     entity table is the client's stream, the answer comes back on the
//     same stream. Nothing is held between calls.
//   - DoPut, then GetFlightInfo, then DoGet of the first endpoint's ticket
//     (older clients, and the write APIs): the entity table is held per
//     command_id until its DoGet, within the bounds of FeastUploadLimits,
//     and the ticket is the command's JSON itself.
//
// The answer is Quiver's training set for the same entities through the
// same offline.Engine path and training-set slots as Quiver's own Flight
// commands, with Feast's column names: the entity table's columns as
// sent, then each feature as "feature" or, with full_feature_names,
// "view__feature", in Feast's spelling of the names. Feast's client turns
// the stream into a pyarrow Table (to_arrow) and that into pandas
// (to_df); it computes no on-demand features itself (its remote job has
// none), so Quiver computes them, as for its own training sets.
//
// A command is Feast's when its JSON has "api"; Quiver's own commands
// never do and stay strictly decoded by wire.DecodeFlightCommand.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/feast"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// FeastUploadLimits bound the entity tables Feast's DoPut leaves for a
// later DoGet. Zero fields take the defaults.
type FeastUploadLimits struct {
	// MaxTables is how many tables are held at once (default 64).
	MaxTables int
	// MaxBytes bounds the decoded size of all held tables together
	// (default 1 GiB).
	MaxBytes int64
	// TTL is how long a table is held without its DoGet (default 10
	// minutes).
	TTL time.Duration
}

func (l *FeastUploadLimits) ensureDefaults() {
	if l.MaxTables <= 0 {
		l.MaxTables = 64
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 1 << 30
	}
	if l.TTL <= 0 {
		l.TTL = 10 * time.Minute
	}
}

// WithFeastUploadLimits sets the bounds on entity tables held for
// Feast's DoPut → DoGet flow.
func WithFeastUploadLimits(l FeastUploadLimits) FlightOption {
	return func(f *FlightService) { f.feastLimits = l }
}

// withFeastClock sets the clock of the held tables' expiry (tests).
func withFeastClock(now func() time.Time) FlightOption {
	return func(f *FlightService) { f.feastNow = now }
}

// The Feast offline API that Quiver serves.
const feastHistorical = "get_historical_features"

// feastCommandMax bounds a Feast command's JSON.
const feastCommandMax = 1 << 20

// feastCommand is the JSON of a Feast remote offline store call. Fields
// of other APIs are ignored, as Feast's own server does.
type feastCommand struct {
	CommandID        string    `json:"command_id"`
	API              string    `json:"api"`
	FeatureViewNames []string  `json:"feature_view_names"`
	FeatureRefs      []string  `json:"feature_refs"`
	Project          string    `json:"project"`
	FullFeatureNames bool      `json:"full_feature_names"`
	NameAliases      []*string `json:"name_aliases"`
	StartDate        *string   `json:"start_date"`
	EndDate          *string   `json:"end_date"`
	EntityDFSQL      *string   `json:"entity_df_sql"`
}

// isFeastCommand reports whether a descriptor's command or a ticket is a
// Feast call: a JSON object with "api".
func isFeastCommand(b []byte) bool {
	if !bytes.Contains(b, []byte(`"api"`)) {
		return false
	}
	var probe struct {
		API json.RawMessage `json:"api"`
	}
	return json.Unmarshal(b, &probe) == nil && probe.API != nil
}

// decodeFeastCommand decodes and checks a Feast call's JSON.
func decodeFeastCommand(b []byte) (*feastCommand, error) {
	if len(b) > feastCommandMax {
		return nil, fmt.Errorf("the Feast command is %d bytes; at most %d are read", len(b), feastCommandMax)
	}
	var c feastCommand
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode the Feast command: %w", err)
	}
	if c.API == "" {
		return nil, fmt.Errorf(`the Feast command's "api" is empty (it names an offline store method, such as %q)`, feastHistorical)
	}
	if c.CommandID == "" {
		return nil, fmt.Errorf(`the Feast command has no "command_id"`)
	}
	if len(c.CommandID) > 256 || !utf8.ValidString(c.CommandID) {
		return nil, fmt.Errorf(`the Feast command's "command_id" is not UTF-8 of at most 256 bytes`)
	}
	return &c, nil
}

// feastUnsupported is the answer to the Feast offline APIs Quiver does
// not serve, naming what it offers instead.
func feastUnsupported(api string) error {
	var instead string
	switch api {
	case "pull_latest_from_table_or_query", "pull_all_from_table_or_query":
		instead = "Quiver loads the online store itself with quiver materialize (feast materialize has no Quiver counterpart over this store)"
	case "offline_write_batch":
		instead = "write rows into the feature view's Parquet source, or send them through Quiver's push API (POST /v1/push)"
	case "write_logged_features":
		instead = "Quiver does not log served features"
	case "persist":
		instead = `save a training set with Quiver's save_training_set action or a DoPut of a "training_set" command with "out"`
	case "validate_data_source", "get_table_column_names_and_types_from_data_source":
		instead = "Quiver checks its sources at quiver plan and quiver apply"
	default:
		instead = "the only Feast offline API served is " + feastHistorical
	}
	return status.Errorf(codes.Unimplemented, "Feast offline API %q is not served by Quiver: %s", registry.Clip(api), instead)
}

// feastRef is a Feast feature reference resolved against the registry.
type feastRef struct {
	feastView, feastFeature string
	view, feature           string
}

// feastPlan is a Feast get_historical_features call turned into Quiver's
// request.
type feastPlan struct {
	features  []string
	timestamp string
	// rename maps Quiver's output feature names to Feast's.
	rename map[string]string
	full   bool
}

// planFeast checks a get_historical_features call against the registry
// and the entity table's schema.
func planFeast(c *feastCommand, snap *registry.Snapshot, schema *arrow.Schema) (*feastPlan, error) {
	if c.API != feastHistorical {
		return nil, feastUnsupported(c.API)
	}
	if c.EntityDFSQL != nil {
		return nil, status.Error(codes.Unimplemented, "get_historical_features: an entity_df given as SQL is not served by Quiver; pass a pandas DataFrame")
	}
	if schema == nil || (len(schema.Fields()) == 1 && schema.Field(0).Name == "key") {
		return nil, status.Error(codes.Unimplemented, "get_historical_features without an entity table (start_date/end_date) is not served by Quiver; pass an entity DataFrame")
	}
	for i, a := range c.NameAliases {
		if a != nil {
			return nil, flightInvalid("get_historical_features: feature view %q is aliased as %q (a feature service projection); Quiver serves feature views by their own names", at(c.FeatureViewNames, i), registry.Clip(*a))
		}
	}
	if c.Project != "" && c.Project != snap.Project && feast.QuiverName(c.Project) != snap.Project {
		return nil, flightInvalid("get_historical_features: project %q is not this server's project %q", registry.Clip(c.Project), snap.Project)
	}
	if len(c.FeatureRefs) == 0 {
		return nil, flightInvalid(`get_historical_features: "feature_refs" is empty (it lists "view:feature" references)`)
	}
	p := &feastPlan{rename: map[string]string{}, full: c.FullFeatureNames}
	seen := map[string]bool{}
	for _, ref := range c.FeatureRefs {
		r, err := resolveFeastRef(snap, ref)
		if err != nil {
			return nil, err
		}
		qref := r.view + ":" + r.feature
		if seen[qref] {
			continue
		}
		seen[qref] = true
		p.features = append(p.features, qref)
		if c.FullFeatureNames {
			p.rename[r.view+"__"+r.feature] = r.feastView + "__" + r.feastFeature
		} else {
			p.rename[r.feature] = r.feastFeature
		}
	}
	ts, err := feastTimestampColumn(schema)
	if err != nil {
		return nil, err
	}
	p.timestamp = ts
	return p, nil
}

func at(names []string, i int) string {
	if i < len(names) {
		return registry.Clip(names[i])
	}
	return fmt.Sprintf("#%d", i)
}

// resolveFeastRef finds a Feast "view:feature" in the registry: by its
// own names, or by the names quiver import feast gives invalid ones.
func resolveFeastRef(snap *registry.Snapshot, ref string) (feastRef, error) {
	fv, ff, ok := strings.Cut(ref, ":")
	if !ok || fv == "" || ff == "" {
		return feastRef{}, flightInvalid("get_historical_features: feature reference %q is not view:feature", registry.Clip(ref))
	}
	if strings.Contains(fv, "@") {
		return feastRef{}, flightInvalid("get_historical_features: feature reference %q names a view version; Quiver serves the registry's applied version of each view", registry.Clip(ref))
	}
	defs := snap.Defs
	r := feastRef{feastView: fv, feastFeature: ff}
	var names []string
	for _, cand := range []string{fv, feast.QuiverName(fv)} {
		if v := defs.FeatureView(cand); v != nil {
			r.view = cand
			for _, f := range v.OutputFeatures() {
				names = append(names, f.Name)
			}
			break
		}
		if v := defs.OnDemandView(cand); v != nil {
			r.view = cand
			for _, f := range v.Features {
				names = append(names, f.Name)
			}
			break
		}
	}
	if r.view == "" {
		return feastRef{}, flightInvalid("get_historical_features: feature %q: no feature view or on-demand view %q in the registry (project %s, version %d)", registry.Clip(ref), registry.Clip(fv), snap.Project, snap.Version)
	}
	for _, cand := range []string{ff, feast.QuiverName(ff)} {
		for _, n := range names {
			if n == cand {
				r.feature = n
				return r, nil
			}
		}
	}
	return feastRef{}, flightInvalid("get_historical_features: feature %q: view %s has no feature %q (it has %s)", registry.Clip(ref), r.view, registry.Clip(ff), strings.Join(names, ", "))
}

// feastTimestampColumn picks the entity table's event timestamp as Feast
// does: event_timestamp, or else its only timestamp column.
func feastTimestampColumn(schema *arrow.Schema) (string, error) {
	var stamps []string
	for _, f := range schema.Fields() {
		if f.Name == offline.DefaultTimestampColumn {
			return f.Name, nil
		}
		if f.Type.ID() == arrow.TIMESTAMP {
			stamps = append(stamps, f.Name)
		}
	}
	if len(stamps) == 1 {
		return stamps[0], nil
	}
	return "", flightInvalid("get_historical_features: the entity table has no event_timestamp column and %d other timestamp columns; name the event time event_timestamp", len(stamps))
}

// feastTrainingSet builds the training set of a Feast call over ents,
// with Feast's column names. The caller holds a training-set slot.
func (f *FlightService) feastTrainingSet(ctx context.Context, p *feastPlan, snap *registry.Snapshot, schema *arrow.Schema, ents array.RecordReader) (array.RecordReader, error) {
	rr, err := f.offline.TrainingSet(ctx, &offline.Request{Defs: snap.Defs, Entities: offline.EntitiesFromArrow(ents),
		Features: p.features, FullFeatureNames: p.full, TimestampColumn: p.timestamp})
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, grpcError(err)
	}
	return newRenamingReader(rr, len(schema.Fields()), p.rename), nil
}

// renamingReader gives a training set's feature columns Feast's names;
// the entity table's columns (the first n) keep theirs.
type renamingReader struct {
	array.RecordReader
	schema *arrow.Schema
	cur    arrow.RecordBatch
}

func newRenamingReader(rr array.RecordReader, n int, rename map[string]string) *renamingReader {
	in := rr.Schema()
	fields := append([]arrow.Field{}, in.Fields()...)
	for i := n; i < len(fields); i++ {
		if name, ok := rename[fields[i].Name]; ok {
			fields[i].Name = name
		}
	}
	md := in.Metadata()
	return &renamingReader{RecordReader: rr, schema: arrow.NewSchema(fields, &md)}
}

func (r *renamingReader) Schema() *arrow.Schema { return r.schema }

func (r *renamingReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if !r.RecordReader.Next() {
		return false
	}
	rec := r.RecordReader.RecordBatch()
	r.cur = array.NewRecordBatch(r.schema, rec.Columns(), rec.NumRows())
	return true
}

func (r *renamingReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record is RecordBatch (arrow-go's older name).
func (r *renamingReader) Record() arrow.RecordBatch { return r.cur }

func (r *renamingReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.RecordReader.Release()
}

// feastExchange answers a Feast call on one DoExchange stream: the
// entity table in, the training set out.
func (f *FlightService) feastExchange(stream flight.FlightService_DoExchangeServer, rd *flight.Reader, cmdBytes []byte) error {
	c, err := decodeFeastCommand(cmdBytes)
	if err != nil {
		return flightInvalid("%v", err)
	}
	snap := f.snapshot()
	p, err := planFeast(c, snap, rd.Schema())
	if err != nil {
		return err
	}
	release, err := f.acquire(stream.Context())
	if err != nil {
		return err
	}
	defer release()
	rr, err := f.feastTrainingSet(stream.Context(), p, snap, rd.Schema(), &checkedReader{Reader: rd})
	if err != nil {
		return err
	}
	defer rr.Release()
	return sendAll(stream, rr)
}

// feastPut holds the entity table of a Feast call for its DoGet; the
// write APIs are refused before their stream is read.
func (f *FlightService) feastPut(stream flight.FlightService_DoPutServer, rd *flight.Reader, cmdBytes []byte) error {
	c, err := decodeFeastCommand(cmdBytes)
	if err != nil {
		return flightInvalid("%v", err)
	}
	// The plan is checked now, so that a bad call fails at its DoPut.
	if _, err := planFeast(c, f.snapshot(), rd.Schema()); err != nil {
		return err
	}
	u := &feastUpload{id: c.CommandID, cmd: append([]byte(nil), cmdBytes...), schema: rd.Schema()}
	if err := f.feast.reserve(c.CommandID, u); err != nil {
		return err
	}
	cr := &checkedReader{Reader: rd}
	for cr.Next() {
		rec := cr.RecordBatch()
		if err := f.feast.grow(u, value.BatchBytes(rec)); err != nil {
			f.feast.drop(c.CommandID, u)
			return err
		}
		rec.Retain()
		u.recs = append(u.recs, rec)
	}
	if err := cr.Err(); err != nil {
		f.feast.drop(c.CommandID, u)
		return streamError(stream.Context(), err)
	}
	return f.feast.ready(u)
}

// feastInfo describes a held Feast call: its one endpoint's ticket is
// the command itself.
func (f *FlightService) feastInfo(d *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	c, err := decodeFeastCommand(d.GetCmd())
	if err != nil {
		return nil, flightInvalid("%v", err)
	}
	if c.API != feastHistorical {
		return nil, feastUnsupported(c.API)
	}
	if _, err := f.feast.peek(c.CommandID, d.GetCmd()); err != nil {
		return nil, err
	}
	return &flight.FlightInfo{Schema: flight.SerializeSchema(arrow.NewSchema(nil, nil), memory.DefaultAllocator), FlightDescriptor: d,
		Endpoint:     []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: d.GetCmd()}}},
		TotalRecords: -1, TotalBytes: -1}, nil
}

// feastGet streams the training set of a held Feast call; the table is
// released whatever the outcome.
func (f *FlightService) feastGet(tk []byte, stream flight.FlightService_DoGetServer) error {
	c, err := decodeFeastCommand(tk)
	if err != nil {
		return flightInvalid("%v", err)
	}
	if c.API != feastHistorical {
		return feastUnsupported(c.API)
	}
	u, err := f.feast.take(c.CommandID, tk)
	if err != nil {
		return err
	}
	defer u.release()
	snap := f.snapshot()
	p, err := planFeast(c, snap, u.schema)
	if err != nil {
		return err
	}
	release, err := f.acquire(stream.Context())
	if err != nil {
		return err
	}
	defer release()
	ents, err := array.NewRecordReader(u.schema, u.recs)
	if err != nil {
		return flightInvalid("get_historical_features: the entity table: %v", err)
	}
	defer ents.Release()
	rr, err := f.feastTrainingSet(stream.Context(), p, snap, u.schema, ents)
	if err != nil {
		return err
	}
	defer rr.Release()
	return sendAll(stream, rr)
}

// feastUpload is an entity table held for its DoGet.
type feastUpload struct {
	id      string
	cmd     []byte
	schema  *arrow.Schema
	recs    []arrow.RecordBatch
	bytes   int64
	expires time.Time
	// complete is set when the whole stream has been read.
	complete bool
}

func (u *feastUpload) release() {
	for _, r := range u.recs {
		r.Release()
	}
	u.recs = nil
}

// feastUploads holds entity tables by command_id, bounded in count and
// bytes; a table expires TTL after its upload began. Expired tables are
// released on the next call that touches the store (no goroutine).
type feastUploads struct {
	limits FeastUploadLimits
	now    func() time.Time

	mu    sync.Mutex
	held  map[string]*feastUpload
	bytes int64
}

func newFeastUploads(l FeastUploadLimits, now func() time.Time) *feastUploads {
	l.ensureDefaults()
	if now == nil {
		now = time.Now
	}
	return &feastUploads{limits: l, now: now, held: map[string]*feastUpload{}}
}

// sweep releases expired tables; the caller holds mu.
func (s *feastUploads) sweep() {
	t := s.now()
	for id, u := range s.held {
		if !t.Before(u.expires) {
			s.removeLocked(id, u)
		}
	}
}

func (s *feastUploads) removeLocked(id string, u *feastUpload) {
	if s.held[id] == u {
		delete(s.held, id)
		s.bytes -= u.bytes
		if u.complete {
			u.release()
		}
	}
}

// reserve makes room for a new table under id.
func (s *feastUploads) reserve(id string, u *feastUpload) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	if _, dup := s.held[id]; dup {
		return status.Errorf(codes.AlreadyExists, "an entity table is already held for command_id %q", id)
	}
	if len(s.held) >= s.limits.MaxTables {
		return status.Errorf(codes.ResourceExhausted, "%d Feast entity tables are held awaiting their DoGet, the most this server holds; retry later, or send the table with DoExchange (Feast's client does)", len(s.held))
	}
	u.expires = s.now().Add(s.limits.TTL)
	s.held[id] = u
	return nil
}

// grow counts n more bytes of u against the bound.
func (s *feastUploads) grow(u *feastUpload, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[u.id] != u {
		return errFeastExpired(u.id, s.limits.TTL)
	}
	if s.bytes+n > s.limits.MaxBytes {
		return status.Errorf(codes.ResourceExhausted, "the Feast entity tables held awaiting DoGet would exceed %d bytes; send the table with DoExchange (Feast's client does), or in a later call", s.limits.MaxBytes)
	}
	s.bytes += n
	u.bytes += n
	return nil
}

// drop forgets a table whose upload failed, releasing what it read.
func (s *feastUploads) drop(id string, u *feastUpload) {
	s.mu.Lock()
	s.removeLocked(id, u)
	s.mu.Unlock()
	u.release()
}

// ready marks a table as read to its end; from now on the store releases
// it when it expires. A table that expired while it was sent is released.
func (s *feastUploads) ready(u *feastUpload) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[u.id] != u {
		u.release()
		return errFeastExpired(u.id, s.limits.TTL)
	}
	u.complete = true
	return nil
}

func errFeastExpired(id string, ttl time.Duration) error {
	return status.Errorf(codes.DeadlineExceeded, "the Feast entity table for command_id %q took longer than %s to send and expired", id, ttl)
}

// find returns the complete table held for id and cmd; the caller holds
// mu.
func (s *feastUploads) find(id string, cmd []byte) (*feastUpload, error) {
	s.sweep()
	u, ok := s.held[id]
	if !ok || !u.complete {
		return nil, status.Errorf(codes.NotFound, "no Feast entity table is held for command_id %q: DoPut it first (a table is held for %s, until its one DoGet)", id, s.limits.TTL)
	}
	if !bytes.Equal(u.cmd, cmd) {
		return nil, flightInvalid("the Feast command for command_id %q differs from the one its entity table was sent with", id)
	}
	return u, nil
}

func (s *feastUploads) peek(id string, cmd []byte) (*feastUpload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.find(id, cmd)
}

// take removes the table for id; the caller releases it.
func (s *feastUploads) take(id string, cmd []byte) (*feastUpload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.find(id, cmd)
	if err != nil {
		return nil, err
	}
	delete(s.held, id)
	s.bytes -= u.bytes
	return u, nil
}

// stats reports the held tables and their bytes (tests, metrics).
func (s *feastUploads) stats() (tables int, bytes int64, ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	for id := range s.held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return len(s.held), s.bytes, ids
}
