package feast

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// Options tune Translate.
type Options struct {
	// Project is the Feast project to import; empty takes the registry's
	// only project (an error when it holds several).
	Project string
	// FeastRepo is the Feast repository directory (absolute), the one that
	// holds feature_store.yaml: Feast resolves relative source paths
	// against it, and so does the imported data_root.
	FeastRepo string
	// OutDir is the directory (absolute) the Quiver repository is written
	// to; data_root is written relative to it.
	OutDir string
	// Stat, when set, is used to tell a Parquet directory (read as
	// DIR/**/*.parquet) from a file. Nil makes no file-system look-ups.
	Stat func(name string) (fs.FileInfo, error)
}

// File is one rendered repository file.
type File struct {
	Path string // slash-separated, relative to the repository
	Data []byte
}

// Result is a translated project.
type Result struct {
	Project string // the Quiver project name
	Files   []File // quiver.yaml first, then features/*.yaml
	Report  *Report
	// Defs counts what was written, by Quiver kind.
	Entities, Sources, FeatureViews, FeatureServices, OnDemandToPort int
}

// The Feast object kinds reports name.
const (
	kindProject     = "project"
	kindEntity      = "entity"
	kindSource      = "data source"
	kindView        = "feature view"
	kindStreamView  = "stream feature view"
	kindOnDemand    = "on-demand feature view"
	kindService     = "feature service"
	kindFeatureTbls = "feature table"
)

// dummyEntity is the placeholder entity Feast gives entityless views.
const dummyEntity = "__dummy"

// Translate maps one project of reg onto a Quiver repository. It returns
// an error only when no repository can be written (no or an ambiguous
// project); everything that does not map is in the Report.
func Translate(reg *Registry, opts Options) (*Result, error) {
	project, err := pickProject(reg, opts.Project)
	if err != nil {
		return nil, err
	}
	t := &translator{
		reg: reg, opts: opts, project: project, rep: &Report{},
		names:    map[string]string{},
		entities: map[string]*registry.Entity{},
		sources:  map[string]*srcState{},
		views:    map[string]*viewState{},
	}
	return t.run()
}

func pickProject(reg *Registry, want string) (string, error) {
	seen := map[string]bool{}
	var names []string
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			names = append(names, p)
		}
	}
	for _, p := range reg.Projects {
		add(p.Name)
	}
	for _, p := range reg.ProjectNames {
		add(p)
	}
	for _, e := range reg.Entities {
		add(e.Project)
	}
	for _, v := range reg.FeatureViews {
		add(v.Project)
	}
	for _, v := range reg.StreamFeatureViews {
		add(v.Project)
	}
	for _, v := range reg.OnDemandFeatureViews {
		add(v.Project)
	}
	for _, s := range reg.FeatureServices {
		add(s.Project)
	}
	sort.Strings(names)
	switch {
	case want != "" && seen[want]:
		return want, nil
	case want != "":
		return "", fmt.Errorf("the registry has no project %q (it has: %s)", want, listOrNone(names))
	case len(names) == 1:
		return names[0], nil
	case len(names) == 0:
		return "", errors.New("the registry holds no project: is it the registry file that feast apply wrote?")
	}
	return "", fmt.Errorf("the registry holds projects %s; choose one with --project", strings.Join(names, ", "))
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

type translator struct {
	reg     *Registry
	opts    Options
	project string
	rep     *Report

	names    map[string]string // Quiver name → "kind Feast-name" that took it
	entities map[string]*registry.Entity
	// entityNames maps Feast entity names to Quiver ones.
	entityNames map[string]string
	sources     map[string]*srcState // by Feast name
	views       map[string]*viewState
	viewOrder   []*viewState
	services    []*registry.FeatureService
	svcComments map[string][]string
	onDemand    []string // rendered, commented blocks

	dataRoot  string // absolute
	dataRels  bool   // some source path is relative to the Feast repo
	absoluted []string
}

// srcState is a Feast source and its translation.
type srcState struct {
	feast *DataSource
	q     *registry.Source
	// why says why it did not map ("" when it did).
	why string
	// used by views; schema collected from them for push and kafka.
	used    bool
	schema  []*registry.Field
	conflic string
}

// viewState is a Feast feature view (plain or stream) and its translation.
type viewState struct {
	feastName string
	kind      string
	q         *registry.FeatureView
	// features maps Feast feature names to Quiver ones.
	features map[string]string
	// aggregated: a stream view served through its aggregations.
	aggregated bool
}

func (t *translator) add(outcome Outcome, kind, name, format string, args ...any) {
	t.rep.Entries = append(t.rep.Entries, Entry{Outcome: outcome, Kind: kind, Name: name, Msg: fmt.Sprintf(format, args...)})
}

// claim gives a Feast object a unique Quiver name: its own name made
// valid, or with suffix when another object took that.
func (t *translator) claim(kind, feastName, suffix string) string {
	base := QuiverName(feastName)
	name := base
	for i := 1; ; i++ {
		if _, taken := t.names[name]; !taken {
			break
		}
		name = base + "_" + suffix
		if i > 1 {
			name = fmt.Sprintf("%s_%s%d", base, suffix, i)
		}
	}
	t.names[name] = kind + " " + feastName
	if name != feastName {
		why := "is not a valid Quiver name (lowercase letters, digits and _)"
		if base != name {
			why = fmt.Sprintf("is taken by the %s (Quiver names are unique across kinds)", t.names[base])
		}
		t.add(Changed, kind, feastName, "is named %s in Quiver: %q %s", name, feastName, why)
	}
	return name
}

var invalidRun = regexp.MustCompile(`[^a-z0-9_]+`)

// QuiverName turns a Feast name into a valid Quiver name: lowercase, runs
// of other characters as one _, no double _, not starting with a digit.
func QuiverName(s string) string {
	out := invalidRun.ReplaceAllString(strings.ToLower(s), "_")
	for strings.Contains(out, "__") {
		out = strings.ReplaceAll(out, "__", "_")
	}
	if out == "" || (out[0] >= '0' && out[0] <= '9') {
		out = "_" + out
	}
	if len(out) > 128 {
		out = out[:128]
	}
	return out
}

func (t *translator) run() (*Result, error) {
	t.rep.Project = t.project
	qproject := QuiverName(t.project)
	if qproject != t.project {
		t.add(Changed, kindProject, t.project, "is named %s in Quiver (names are lowercase letters, digits and _)", qproject)
	}
	if t.reg.FeatureTables > 0 {
		t.add(NotMapped, kindFeatureTbls, fmt.Sprintf("(%d)", t.reg.FeatureTables), "feature tables are Feast's deprecated predecessor of feature views; they are not imported")
	}
	t.resolveDataRoot()
	// Views claim their names first: feature references in models use them.
	for _, v := range t.reg.FeatureViews {
		if v.Project == t.project {
			t.views[v.Name] = &viewState{feastName: v.Name, kind: kindView}
			t.views[v.Name].q = &registry.FeatureView{Name: t.claim(kindView, v.Name, "view")}
		}
	}
	for _, v := range t.reg.StreamFeatureViews {
		if v.Project == t.project {
			t.views[v.Name] = &viewState{feastName: v.Name, kind: kindStreamView}
			t.views[v.Name].q = &registry.FeatureView{Name: t.claim(kindStreamView, v.Name, "view")}
		}
	}
	odNames := map[string]string{}
	for _, v := range t.reg.OnDemandFeatureViews {
		if v.Project == t.project {
			odNames[v.Name] = t.claim(kindOnDemand, v.Name, "odfv")
		}
	}
	t.translateEntities()
	t.collectSources()
	for _, v := range t.reg.FeatureViews {
		if v.Project == t.project {
			t.translateView(t.views[v.Name], v, nil)
		}
	}
	for _, v := range t.reg.StreamFeatureViews {
		if v.Project == t.project {
			t.translateView(t.views[v.Name], &v.FeatureView, v)
		}
	}
	t.finishSources()
	for _, v := range t.reg.OnDemandFeatureViews {
		if v.Project == t.project {
			t.onDemandView(v, odNames[v.Name])
		}
	}
	t.svcComments = map[string][]string{}
	for _, s := range t.reg.FeatureServices {
		if s.Project == t.project {
			t.featureService(s, odNames)
		}
	}
	res := &Result{Project: qproject, Report: t.rep}
	t.render(res, qproject)
	t.rep.sort()
	return res, nil
}

// resolveDataRoot picks the offline data root: the Feast repository, or
// the nearest directory above it and every absolute local source path.
func (t *translator) resolveDataRoot() {
	root := filepath.Clean(t.opts.FeastRepo)
	for _, s := range t.reg.DataSources {
		if s.Project != t.project || s.File == nil {
			continue
		}
		if p := s.File.URI; filepath.IsAbs(p) && !strings.Contains(p, "://") {
			root = commonDir(root, filepath.Dir(filepath.Clean(p)))
		}
	}
	t.dataRoot = root
}

func commonDir(a, b string) string {
	for {
		rel, err := filepath.Rel(a, b)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return a
		}
		parent := filepath.Dir(a)
		if parent == a {
			return a
		}
		a = parent
	}
}

func (t *translator) translateEntities() {
	t.entityNames = map[string]string{}
	// Feast may declare an entity without its join key's type; the views'
	// entity columns carry it.
	colTypes := map[string]ValueType{}
	for _, v := range t.allViews() {
		for _, c := range v.EntityColumns {
			if c.Type != TypeInvalid {
				colTypes[c.Name] = c.Type
			}
		}
	}
	for _, e := range t.reg.Entities {
		if e.Project != t.project || e.Name == dummyEntity {
			continue
		}
		typ := e.Type
		if typ == TypeInvalid {
			typ = colTypes[e.JoinKey]
			if typ != TypeInvalid {
				t.add(Changed, kindEntity, e.Name, "declares no value type; join key %s takes %s from the views' entity columns", e.JoinKey, typ)
			}
		}
		qt, how := quiverType(typ)
		if typ == TypeInt32 {
			qt = registry.TypeInt64 // join keys are int64 or string
		}
		switch {
		case typ == TypeInvalid:
			t.add(NotMapped, kindEntity, e.Name, "join key %s has no value type in the registry (declare value_type on the entity)", e.JoinKey)
			continue
		case how == typeUnsupported || (qt != registry.TypeInt64 && qt != registry.TypeString):
			t.add(NotMapped, kindEntity, e.Name, "join key %s is %s; Quiver join keys are int64 or string", e.JoinKey, typ)
			continue
		case e.JoinKey == "":
			t.add(NotMapped, kindEntity, e.Name, "has no join key")
			continue
		}
		name := t.claim(kindEntity, e.Name, "entity")
		key := QuiverName(e.JoinKey)
		if key != e.JoinKey {
			t.add(Changed, kindEntity, e.Name, "join key %s is named %s in Quiver; sources map the column to it", e.JoinKey, key)
		}
		if typ == TypeInt32 {
			t.add(Changed, kindEntity, e.Name, "join key %s is INT32 in Feast and int64 in Quiver (join keys are int64 or string)", e.JoinKey)
		}
		t.entities[e.Name] = &registry.Entity{Name: name, JoinKeys: []*registry.Field{{Name: key, Type: qt}},
			Description: e.Description, Owner: e.Owner, Tags: e.Tags}
		t.entityNames[e.Name] = name
		t.add(Mapped, kindEntity, e.Name, "entity %s, join key %s %s", name, key, qt)
	}
}

func (t *translator) allViews() []*FeatureView {
	var out []*FeatureView
	for _, v := range t.reg.FeatureViews {
		if v.Project == t.project {
			out = append(out, v)
		}
	}
	for _, v := range t.reg.StreamFeatureViews {
		if v.Project == t.project {
			out = append(out, &v.FeatureView)
		}
	}
	return out
}

// collectSources gathers the project's sources: the registry's list, and
// the copies views embed (older registries list no sources).
func (t *translator) collectSources() {
	var add func(s *DataSource, listed bool)
	add = func(s *DataSource, listed bool) {
		if s == nil || s.Name == "" {
			return
		}
		if _, ok := t.sources[s.Name]; !ok || listed {
			if !ok || t.sources[s.Name].feast == nil || listed {
				t.sources[s.Name] = &srcState{feast: s}
			}
		}
		add(s.BatchSource, false)
	}
	for _, s := range t.reg.DataSources {
		if s.Project == t.project {
			add(s, true)
		}
	}
	for _, v := range t.allViews() {
		if _, ok := t.sources[srcName(v.BatchSource)]; !ok {
			add(v.BatchSource, false)
		}
		if _, ok := t.sources[srcName(v.StreamSource)]; !ok {
			add(v.StreamSource, false)
		}
	}
	names := make([]string, 0, len(t.sources))
	for n := range t.sources {
		names = append(names, n)
	}
	sort.Strings(names)
	// Request sources are on-demand inputs, not sources; the rest claim
	// names after the views and entities.
	for _, n := range names {
		st := t.sources[n]
		if st.feast.Type == SourceRequest {
			delete(t.sources, n)
			continue
		}
		t.translateSource(st)
	}
}

func srcName(s *DataSource) string {
	if s == nil {
		return ""
	}
	return s.Name
}

func (t *translator) translateSource(st *srcState) {
	s := st.feast
	q := &registry.Source{TimestampField: s.TimestampField, CreatedTimestampField: s.CreatedTimestampColumn,
		Description: s.Description, Owner: s.Owner, Tags: s.Tags}
	for from, to := range s.FieldMapping {
		if q.FieldMapping == nil {
			q.FieldMapping = map[string]string{}
		}
		q.FieldMapping[from] = QuiverName(to)
	}
	switch s.Type {
	case SourceFile:
		if s.File == nil || s.File.URI == "" {
			st.why = "a file source without a path"
			break
		}
		if s.File.Format == "delta" {
			st.why = "a Delta table; Quiver reads Parquet files"
			break
		}
		q.Kind = registry.SourceParquet
		q.Path, st.why = t.sourcePath(s)
		if s.File.S3EndpointOverride != "" {
			t.add(Changed, kindSource, s.Name, "s3_endpoint_override %s is not per source in Quiver; set storage.s3.endpoint in quiver.yaml", s.File.S3EndpointOverride)
		}
	case SourcePush:
		q.Kind = registry.SourcePush
		if s.BatchSource != nil {
			t.add(Changed, kindSource, s.Name, "Feast also writes pushed rows to batch source %s; a Quiver push source feeds the online store and the stream's offline log, and %s is imported as a source of its own", s.BatchSource.Name, s.BatchSource.Name)
		}
	case SourceKafka:
		if s.Kafka == nil {
			st.why = "a Kafka source without kafka_options"
			break
		}
		switch s.Kafka.Format {
		case "json", "":
			q.Format = "json"
		default:
			st.why = fmt.Sprintf("messages are %s; Quiver's kafka sources read JSON (protobuf and avro are not supported yet)", s.Kafka.Format)
		}
		q.Kind = registry.SourceKafka
		q.Topic = s.Kafka.Topic
		for _, b := range strings.Split(s.Kafka.BootstrapServers, ",") {
			if b = strings.TrimSpace(b); b != "" {
				q.Brokers = append(q.Brokers, b)
			}
		}
		if s.Kafka.WatermarkDelay > 0 {
			t.add(Changed, kindSource, s.Name, "watermark_delay_threshold %s has no Quiver equivalent: late events are applied whenever they arrive, guarded by event time", registry.Duration(s.Kafka.WatermarkDelay))
		}
		if s.BatchSource != nil {
			t.add(Changed, kindSource, s.Name, "its batch source %s is imported as a source of its own; Quiver's stream writes its own offline log for training sets of stream views", s.BatchSource.Name)
		}
		if s.Kafka.Format == "json" && s.Kafka.Schema != "" {
			t.add(Changed, kindSource, s.Name, "the JSON schema %q is replaced by a declared schema built from the views that read the source; JSON timestamps are RFC 3339 strings or epoch milliseconds", s.Kafka.Schema)
		}
	default:
		what := s.Type.String()
		if s.Options != "" {
			what += " (" + s.Options + ")"
		}
		st.why = fmt.Sprintf("a %s source; Quiver reads Parquet files, Kafka and pushed rows", what)
	}
	if s.DatePartitionColumn != "" && st.why == "" {
		t.add(Changed, kindSource, s.Name, "date_partition_column %s is not used: Quiver prunes by event time", s.DatePartitionColumn)
	}
	if st.why != "" {
		return
	}
	q.Name = t.claim(kindSource, s.Name, "source")
	st.q = q
}

var schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://`)

// sourcePath maps a file source's URI to a path under data_root.
func (t *translator) sourcePath(s *DataSource) (string, string) {
	uri := s.File.URI
	if m := schemeRE.FindString(uri); m != "" {
		switch strings.ToLower(m) {
		case "s3://":
			return uri, ""
		case "file://":
			uri = strings.TrimPrefix(uri, m)
		default:
			return "", fmt.Sprintf("a file source at %s; Quiver reads local paths and s3:// URIs", uri)
		}
	}
	abs := filepath.Clean(uri)
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(t.opts.FeastRepo, abs)
		t.dataRels = true
		t.add(Changed, kindSource, s.Name, "relative path %s resolves against the Feast repository, as in Feast: offline.data_root points there", uri)
	}
	rel, err := filepath.Rel(t.dataRoot, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Sprintf("path %s is outside the data root %s", uri, t.dataRoot)
	}
	p := filepath.ToSlash(rel)
	if filepath.IsAbs(uri) {
		t.add(Changed, kindSource, s.Name, "absolute path %s is written relative to offline.data_root as %s", uri, p)
	}
	if t.opts.Stat != nil {
		if fi, err := t.opts.Stat(abs); err == nil && fi.IsDir() {
			p = path.Join(p, "**", "*.parquet")
			t.add(Changed, kindSource, s.Name, "%s is a directory (a Parquet dataset): read as %s", uri, p)
		}
	}
	return p, ""
}

// quiver type conversions, and how faithful they are.
const (
	typeSame = iota
	typeChanged
	typeUnsupported
)

func quiverType(t ValueType) (registry.ValueType, int) {
	scalar := map[ValueType]value.Scalar{
		TypeBytes: value.Bytes, TypeString: value.String, TypeInt32: value.Int32, TypeInt64: value.Int64,
		TypeDouble: value.Float64, TypeFloat: value.Float32, TypeBool: value.Bool, TypeUnixTimestamp: value.Timestamp,
	}
	if s, ok := scalar[t]; ok {
		return registry.ValueType{Elem: s}, typeSame
	}
	if t >= TypeBytesList && t <= TypeUnixTimestampList {
		return registry.ValueType{Elem: scalar[t-10], List: true}, typeSame
	}
	if t >= TypeBytesSet && t <= TypeUnixTimestampSet {
		return registry.ValueType{Elem: scalar[t-21], List: true}, typeChanged
	}
	switch t {
	case TypeJSON, TypeUUID, TypeTimeUUID:
		return registry.TypeString, typeChanged
	}
	return registry.ValueType{}, typeUnsupported
}

// feature maps one Feast field; ok false when its type does not map.
func (t *translator) feature(kind, owner string, f *Field) (*registry.Feature, bool) {
	qt, how := quiverType(f.Type)
	switch how {
	case typeUnsupported:
		t.add(NotMapped, kind, owner, "feature %s is %s, which Quiver has no type for; it is left out", f.Name, f.Type)
		return nil, false
	case typeChanged:
		note := "a list (set semantics, unique values, are not kept)"
		if !qt.List {
			note = "a string"
		}
		t.add(Changed, kind, owner, "feature %s is %s in Feast and %s in Quiver: %s", f.Name, f.Type, qt, note)
	}
	name := QuiverName(f.Name)
	if name != f.Name {
		t.add(Changed, kind, owner, "feature %s is named %s in Quiver; its source maps the column to it", f.Name, name)
	}
	return &registry.Feature{Name: name, Type: qt, Description: f.Description, Tags: f.Tags}, true
}

func (t *translator) translateView(vs *viewState, v *FeatureView, sv *StreamFeatureView) {
	kind := vs.kind
	q := vs.q
	q.TTL = registry.Duration(v.TTL)
	q.Description, q.Owner, q.Tags = v.Description, v.Owner, v.Tags
	on := v.Online
	q.Online = &on
	vs.features = map[string]string{}
	fail := func(format string, args ...any) {
		t.add(NotMapped, kind, v.Name, format, args...)
		vs.q = nil
		delete(t.names, q.Name)
	}
	if v.Disabled {
		t.add(Changed, kind, v.Name, "is disabled in Feast; Quiver has no disabled views, so it is imported enabled")
	}
	if v.SourceViews > 0 {
		fail("is derived from %d other views (source_views); Quiver views read one source", v.SourceViews)
		return
	}
	// Entities.
	joinKeys := map[string]registry.ValueType{}
	for _, en := range v.Entities {
		if en == dummyEntity {
			fail("has no entities; Quiver views describe at least one entity")
			return
		}
		e := t.entities[en]
		if e == nil {
			fail("entity %s did not map", en)
			return
		}
		q.Entities = append(q.Entities, e.Name)
		for _, k := range e.JoinKeys {
			joinKeys[k.Name] = k.Type
		}
	}
	if len(q.Entities) == 0 {
		fail("has no entities; Quiver views describe at least one entity")
		return
	}
	// Source: the stream source where there is one (that is what serves
	// online), else the batch source.
	fs := v.BatchSource
	if v.StreamSource != nil {
		fs = v.StreamSource
	}
	if fs == nil {
		fail("has no source")
		return
	}
	st := t.sources[fs.Name]
	switch {
	case st == nil && fs.Type == SourceRequest:
		fail("reads request source %s; request fields are inputs of on-demand views in Quiver", fs.Name)
		return
	case st == nil || st.q == nil:
		why := "did not map"
		if st != nil {
			why = "is " + st.why
		}
		fail("source %s %s", fs.Name, why)
		return
	}
	q.Source = st.q.Name
	st.used = true
	if v.StreamSource != nil && v.BatchSource != nil && v.StreamSource.Type == SourcePush {
		t.add(Changed, kind, v.Name, "reads push source %s; Feast's training sets read batch source %s, Quiver's read what was pushed (the push source's offline log)", v.StreamSource.Name, v.BatchSource.Name)
	}
	if v.StreamSource != nil && v.BatchSource != nil && v.StreamSource.Type == SourceKafka {
		t.add(Changed, kind, v.Name, "reads Kafka source %s; Feast's training sets read batch source %s, Quiver's read the stream's offline log", v.StreamSource.Name, v.BatchSource.Name)
	}
	if v.Transformation != nil {
		mode := v.Mode
		if mode == "" {
			mode = v.Transformation.Mode
		}
		if sv == nil || len(sv.Aggregations) == 0 || v.Transformation.BodyText != "" {
			t.add(NotMapped, kind, v.Name, "its %s transformation %s is code; Quiver views read source columns as they are (port it to a duckdb_query source or an on-demand view)", orDefault(mode, "Python"), orDefault(v.Transformation.Name, "(unnamed)"))
		}
	}
	// Features (join keys Feast lists among them are dropped: they are the
	// row's key in Quiver).
	srcTypes := map[string]registry.ValueType{}
	for k, typ := range joinKeys {
		srcTypes[k] = typ
	}
	var feats []*registry.Feature
	seen := map[string]string{}
	for _, f := range v.Features {
		if _, isKey := joinKeys[QuiverName(f.Name)]; isKey {
			continue
		}
		qf, ok := t.feature(kind, v.Name, f)
		if !ok {
			continue
		}
		if prev, dup := seen[qf.Name]; dup {
			fail("features %s and %s are both %s in Quiver", prev, f.Name, qf.Name)
			return
		}
		seen[qf.Name] = f.Name
		vs.features[f.Name] = qf.Name
		srcTypes[qf.Name] = qf.Type
		feats = append(feats, qf)
	}
	if sv != nil && len(sv.Aggregations) > 0 {
		t.aggregations(vs, sv, st, srcTypes)
		if vs.q == nil {
			return
		}
	} else {
		q.Features = feats
	}
	if len(q.Features) == 0 && len(q.Aggregations) == 0 {
		fail("has no feature that maps")
		return
	}
	if !t.bindColumns(st, srcTypes) {
		fail("source %s: %s", fs.Name, st.conflic)
		return
	}
	if q.TTL == 0 {
		t.add(Mapped, kind, v.Name, "view %s; ttl 0 means no age limit in Feast and in Quiver", q.Name)
	} else {
		t.add(Mapped, kind, v.Name, "view %s, ttl %s", q.Name, q.TTL)
		t.add(Changed, kind, v.Name, "ttl %s is enforced online too: Quiver serves an older value as OUTSIDE_MAX_AGE with a null value, where Feast's online store returns the last materialized value whatever its age", q.TTL)
	}
	if !on {
		t.add(Changed, kind, v.Name, "online: false: not materialized to the online store, as in Feast")
	}
	t.viewOrder = append(t.viewOrder, vs)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

var aggFunctions = map[string]string{"sum": registry.AggSum, "count": registry.AggCount, "mean": registry.AggAvg,
	"avg": registry.AggAvg, "min": registry.AggMin, "max": registry.AggMax, "last": registry.AggLast}

// aggregations maps a stream view's aggregations onto windowed
// aggregations with one hop.
func (t *translator) aggregations(vs *viewState, sv *StreamFeatureView, st *srcState, srcTypes map[string]registry.ValueType) {
	q := vs.q
	name := sv.Name
	vs.aggregated = true
	var windows []time.Duration
	for _, a := range sv.Aggregations {
		if a.TimeWindow > 0 {
			windows = append(windows, a.TimeWindow)
		}
	}
	hop := registry.DefaultHop.Std()
	if sv.EnableTiling && sv.TilingHop > 0 {
		hop = sv.TilingHop
	}
	for _, w := range windows {
		hop = gcd(hop, w)
	}
	if hop <= 0 {
		hop = registry.DefaultHop.Std()
	}
	q.Hop = registry.Duration(hop)
	seen := map[string]bool{}
	for i, a := range sv.Aggregations {
		label := fmt.Sprintf("aggregation %d (%s of %s)", i, a.Function, orDefault(a.Column, "rows"))
		fn, ok := aggFunctions[a.Function]
		if !ok {
			t.add(NotMapped, kindStreamView, name, "%s: Quiver's aggregation functions are count, sum, avg, min, max and last; it is left out", label)
			continue
		}
		if a.TimeWindow <= 0 {
			t.add(NotMapped, kindStreamView, name, "%s has no time window; Quiver aggregates over windows; it is left out", label)
			continue
		}
		feastName := a.Name
		if feastName == "" {
			feastName = fmt.Sprintf("%s_%s_%ds", a.Function, a.Column, int64(a.TimeWindow/time.Second))
		}
		qa := &registry.Aggregation{Name: QuiverName(feastName), Function: fn, Window: registry.Duration(a.TimeWindow)}
		if a.Column != "" {
			qa.Column = QuiverName(a.Column)
			if _, ok := srcTypes[qa.Column]; !ok {
				t.add(NotMapped, kindStreamView, name, "%s reads column %s, which the view's schema does not declare; it is left out", label, a.Column)
				continue
			}
		}
		if seen[qa.Name] {
			t.add(NotMapped, kindStreamView, name, "%s: a second feature named %s; it is left out", label, qa.Name)
			continue
		}
		seen[qa.Name] = true
		vs.features[feastName] = qa.Name
		q.Aggregations = append(q.Aggregations, qa)
		if fn != a.Function {
			t.add(Changed, kindStreamView, name, "aggregation %s: Feast's %s is Quiver's %s", qa.Name, a.Function, fn)
		}
		if a.SlideInterval > 0 && registry.Duration(a.SlideInterval) != q.Hop {
			t.add(Changed, kindStreamView, name, "aggregation %s: Feast recomputes its %s window every %s (slide_interval); Quiver's value at time T covers floor(T, %s) - %s to T, so it moves every hop %s", qa.Name, qa.Window, registry.Duration(a.SlideInterval), q.Hop, qa.Window, q.Hop)
		}
	}
	if len(q.Aggregations) == 0 {
		t.add(NotMapped, kindStreamView, name, "none of its aggregations maps")
		vs.q = nil
		delete(t.names, q.Name)
		return
	}
	if len(sv.Features) > 0 {
		t.add(Changed, kindStreamView, name, "serves its aggregations (%s), not its schema fields; the schema fields become the Kafka source's declared schema", aggNames(q.Aggregations))
	}
}

func aggNames(as []*registry.Aggregation) string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return strings.Join(out, ", ")
}

func gcd(a, b time.Duration) time.Duration {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// bindColumns records, for source st, the columns a view reads (Quiver
// names and types): renames go into the field mapping, and for push and
// kafka sources into the declared schema. It reports false on a type
// conflict with another view.
func (t *translator) bindColumns(st *srcState, cols map[string]registry.ValueType) bool {
	q := st.q
	inverse := map[string]string{}
	for from, to := range q.FieldMapping {
		inverse[to] = from
	}
	names := make([]string, 0, len(cols))
	for n := range cols {
		names = append(names, n)
	}
	sort.Strings(names)
	stream := q.Kind.IsStream()
	for _, name := range names {
		col := inverse[name]
		if col == "" {
			col = t.feastColumn(st, name)
			if col != name {
				if q.FieldMapping == nil {
					q.FieldMapping = map[string]string{}
				}
				q.FieldMapping[col] = name
			}
		}
		if !stream {
			continue
		}
		if prev := fieldOf(st.schema, col); prev != nil {
			if prev.Type != cols[name] {
				st.conflic = fmt.Sprintf("views read column %s as %s and as %s", col, prev.Type, cols[name])
				return false
			}
			continue
		}
		st.schema = append(st.schema, &registry.Field{Name: col, Type: cols[name]})
	}
	return true
}

// feastColumn returns the column in the Feast source whose Quiver name is
// name: the Feast feature or join key it was made from.
func (t *translator) feastColumn(st *srcState, name string) string {
	for _, v := range t.allViews() {
		for _, f := range append(append([]*Field{}, v.Features...), v.EntityColumns...) {
			if QuiverName(f.Name) == name && (srcName(v.BatchSource) == st.feast.Name || srcName(v.StreamSource) == st.feast.Name) {
				return f.Name
			}
		}
	}
	for _, e := range t.reg.Entities {
		if QuiverName(e.JoinKey) == name {
			return e.JoinKey
		}
	}
	return name
}

func fieldOf(fs []*registry.Field, name string) *registry.Field {
	for _, f := range fs {
		if f.Name == name {
			return f
		}
	}
	return nil
}

var validColumn = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// finishSources completes push and kafka sources with their declared
// schemas and reports every source.
func (t *translator) finishSources() {
	names := make([]string, 0, len(t.sources))
	for n := range t.sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := t.sources[n]
		if st.q == nil {
			t.add(NotMapped, kindSource, n, "is %s", st.why)
			continue
		}
		q := st.q
		if q.Kind.IsStream() {
			if !st.used {
				t.add(NotMapped, kindSource, n, "no imported view reads it, and a Quiver %s source needs a declared schema, which is built from its views", q.Kind)
				delete(t.names, q.Name)
				st.q = nil
				continue
			}
			for _, c := range []string{q.TimestampField, q.CreatedTimestampField} {
				if c != "" && fieldOf(st.schema, c) == nil {
					st.schema = append(st.schema, &registry.Field{Name: c, Type: registry.TypeTimestamp})
				}
			}
			for _, f := range st.schema {
				if !validColumn.MatchString(f.Name) || strings.Contains(f.Name, "__") {
					t.add(NotMapped, kindSource, n, "column %s cannot be declared in a Quiver schema (lowercase letters, digits and _)", f.Name)
					st.q = nil
				}
			}
			if st.q == nil {
				delete(t.names, q.Name)
				t.dropViewsOf(q.Name, n)
				continue
			}
			q.Schema = st.schema
		}
		// Mapping entries from columns the schema does not declare would
		// not validate; Feast ignores them too.
		for from := range q.FieldMapping {
			if len(q.Schema) > 0 && fieldOf(q.Schema, from) == nil {
				delete(q.FieldMapping, from)
			}
		}
		if len(q.FieldMapping) == 0 {
			q.FieldMapping = nil
		}
		if q.TimestampField == "" {
			t.add(NotMapped, kindSource, n, "has no timestamp_field; Quiver needs each row's event time")
			delete(t.names, q.Name)
			st.q = nil
			t.dropViewsOf(q.Name, n)
			continue
		}
		where := q.Path
		switch q.Kind {
		case registry.SourceKafka:
			where = "topic " + q.Topic
		case registry.SourcePush:
			where = "rows pushed through the API"
		}
		t.add(Mapped, kindSource, n, "%s source %s (%s)", q.Kind, q.Name, where)
		if q.CreatedTimestampField != "" {
			t.add(Changed, kindSource, n, "created_timestamp_column %s breaks ties of equal event time, as in Feast; rows still tied go to the last in source order (files in path order, rows in file order), where Feast's choice is arbitrary", q.CreatedTimestampField)
		}
	}
}

// dropViewsOf removes the views reading a source that was dropped late.
func (t *translator) dropViewsOf(qsource, feastSource string) {
	kept := t.viewOrder[:0]
	for _, vs := range t.viewOrder {
		if vs.q.Source == qsource {
			t.add(NotMapped, vs.kind, vs.feastName, "source %s did not map", feastSource)
			delete(t.names, vs.q.Name)
			vs.q = nil
			continue
		}
		kept = append(kept, vs)
	}
	t.viewOrder = kept
}

// onDemandView renders a commented skeleton of a Python on-demand view.
func (t *translator) onDemandView(v *OnDemandFeatureView, name string) {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	mode := orDefault(v.Mode, "python")
	w("# On-demand feature view %s (Feast mode %s) runs Python, which Quiver does not run.", v.Name, mode)
	w("# Port it by hand: uncomment the definition, write each feature's expression")
	w("# in CEL (view.feature for an input view's feature, request.field for a")
	w("# request field), then run quiver validate.")
	var inputs []string
	var vars []string
	for _, s := range v.Sources {
		if s.Projection == nil {
			continue
		}
		vs := t.views[s.Projection.ViewName]
		if vs == nil || vs.q == nil {
			w("# Input view %s did not map; port it first.", s.Projection.ViewName)
			continue
		}
		inputs = append(inputs, vs.q.Name)
		for _, c := range s.Projection.Columns {
			qn := vs.features[c.Name]
			if qn == "" {
				continue
			}
			qt, _ := quiverType(c.Type)
			vars = append(vars, fmt.Sprintf("%s.%s (%s)", vs.q.Name, qn, qt))
		}
	}
	var request []string
	for _, s := range v.Sources {
		if s.Request == nil || s.Request.Request == nil {
			continue
		}
		for _, f := range s.Request.Request.Schema {
			qt, how := quiverType(f.Type)
			if how == typeUnsupported {
				w("# Request field %s is %s, which Quiver has no type for.", f.Name, f.Type)
				continue
			}
			request = append(request, fmt.Sprintf("{name: %s, type: %s}", QuiverName(f.Name), yamlScalar(qt.String())))
			vars = append(vars, fmt.Sprintf("request.%s (%s)", QuiverName(f.Name), qt))
		}
	}
	if len(vars) > 0 {
		w("#")
		w("# Variables the expressions can read:")
		for _, x := range vars {
			w("#   %s", x)
		}
	}
	if v.Transformation != nil && v.Transformation.BodyText != "" {
		w("#")
		w("# The Feast transformation:")
		for _, line := range strings.Split(strings.TrimRight(v.Transformation.BodyText, "\n"), "\n") {
			w("#   %s", line)
		}
	}
	w("#")
	w("# on_demand_feature_views:")
	w("#   - name: %s", name)
	if v.Description != "" {
		w("#     description: %s", yamlScalar(v.Description))
	}
	if v.Owner != "" {
		w("#     owner: %s", yamlScalar(v.Owner))
	}
	w("#     inputs: [%s]", strings.Join(inputs, ", "))
	if len(request) > 0 {
		w("#     request:")
		for _, r := range request {
			w("#       - %s", r)
		}
	}
	w("#     features:")
	for _, f := range v.Features {
		qt, how := quiverType(f.Type)
		if how == typeUnsupported {
			w("#       # %s is %s, which Quiver has no type for", f.Name, f.Type)
			continue
		}
		w("#       - name: %s", QuiverName(f.Name))
		w("#         type: %s", yamlScalar(qt.String()))
		w("#         expr: %s  # TODO: CEL returning %s", yamlScalar(celSkeleton(qt)), qt)
	}
	t.onDemand = append(t.onDemand, b.String())
	t.add(NotMapped, kindOnDemand, v.Name, "runs Python (mode %s): written commented out in features/on_demand.yaml with its inputs, outputs and a CEL skeleton to port by hand", mode)
	if v.WriteToOnlineStore {
		t.add(NotMapped, kindOnDemand, v.Name, "write_to_online_store: Quiver computes on-demand features at request time and does not store them")
	}
	if v.Aggregations > 0 {
		t.add(NotMapped, kindOnDemand, v.Name, "its %d aggregations have no on-demand equivalent in Quiver", v.Aggregations)
	}
}

// celSkeleton is a placeholder expression of type qt, to be replaced.
func celSkeleton(qt registry.ValueType) string {
	if qt.List {
		return "[]"
	}
	switch qt.Elem {
	case value.Int32, value.Int64:
		return "0"
	case value.Float32, value.Float64:
		return "0.0"
	case value.Bool:
		return "false"
	case value.String:
		return `""`
	case value.Bytes:
		return `b""`
	case value.Timestamp:
		return `timestamp("1970-01-01T00:00:00Z")`
	}
	return "null"
}

func (t *translator) featureService(s *FeatureService, odNames map[string]string) {
	name := t.claim(kindService, s.Name, "service")
	q := &registry.FeatureService{Name: name, Description: s.Description, Owner: s.Owner, Tags: s.Tags}
	var comments []string
	for _, p := range s.Projections {
		if od, ok := odNames[p.ViewName]; ok {
			for _, c := range p.Columns {
				comments = append(comments, fmt.Sprintf("%s:%s (on-demand view: port it, then add this reference)", od, QuiverName(c.Name)))
			}
			t.add(NotMapped, kindService, s.Name, "references on-demand view %s, which is to port by hand; its features are listed commented out", p.ViewName)
			continue
		}
		vs := t.views[p.ViewName]
		if vs == nil || vs.q == nil {
			t.add(NotMapped, kindService, s.Name, "references view %s, which did not map; its features are left out", p.ViewName)
			continue
		}
		if p.Alias != "" && p.Alias != p.ViewName {
			t.add(Changed, kindService, s.Name, "projection alias %s is not kept: Quiver names the features after view %s (full names %s__feature, not %s__feature)", p.Alias, vs.q.Name, vs.q.Name, p.Alias)
		}
		if len(p.JoinKeyMap) > 0 {
			t.add(NotMapped, kindService, s.Name, "join_key_map of view %s is not kept: Quiver looks the view up by its entities' own join keys", p.ViewName)
		}
		if vs.aggregated {
			q.Features = append(q.Features, vs.q.Name+":*")
			t.add(Changed, kindService, s.Name, "view %s is referenced as %s:* (its aggregations), not by its Feast schema fields", p.ViewName, vs.q.Name)
			continue
		}
		all := len(p.Columns) == 0 || len(p.Columns) == len(vs.q.Features)
		var refs []string
		for _, c := range p.Columns {
			qn := vs.features[c.Name]
			if qn == "" {
				t.add(NotMapped, kindService, s.Name, "feature %s of view %s did not map", c.Name, p.ViewName)
				all = false
				continue
			}
			refs = append(refs, vs.q.Name+":"+qn)
		}
		if all {
			refs = []string{vs.q.Name + ":*"}
		}
		q.Features = append(q.Features, refs...)
	}
	if s.Logging {
		t.add(NotMapped, kindService, s.Name, "logging_config: Quiver does not log served features")
	}
	if len(q.Features) == 0 {
		t.add(NotMapped, kindService, s.Name, "has no feature that maps")
		delete(t.names, name)
		return
	}
	t.services = append(t.services, q)
	t.svcComments[name] = comments
	t.add(Mapped, kindService, s.Name, "service %s, %d feature references", name, len(q.Features))
}
