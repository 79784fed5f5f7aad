package registry

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Meta locates an object in the repository it was loaded from. It is not
// part of the object's content: it is neither hashed nor stored.
type Meta struct {
	File   string // repository-relative file path
	Path   string // path of the object within the file, e.g. feature_views[2]
	Line   int
	Column int
	fields map[string]Position // full field path → position, shared per file
}

// Pos returns the position of the object itself.
func (m *Meta) Pos() Position { return Position{File: m.File, Line: m.Line, Column: m.Column} }

// At returns the position of a field below the object (sub is relative,
// like "features[1].type"); the nearest enclosing known position otherwise.
func (m *Meta) At(sub string) Position {
	p := subPath(m.Path, sub)
	for p != "" {
		if pos, ok := m.fields[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			break
		}
		p = p[:i]
	}
	return m.Pos()
}

func (m *Meta) meta() *Meta { return m }

// subPath appends a relative field path (x, x.y or [i]) to path.
func subPath(path, sub string) string {
	switch {
	case sub == "":
		return path
	case path == "" || strings.HasPrefix(sub, "["):
		return path + sub
	}
	return path + "." + sub
}

// Object is any named definition.
type Object interface {
	ObjectName() string
	ObjectKind() Kind
	meta() *Meta
}

// Kind names an object kind as it appears in definition files and plans.
type Kind string

// Object kinds, in the order plans list them.
const (
	KindEntity         Kind = "entity"
	KindSource         Kind = "source"
	KindFeatureView    Kind = "feature_view"
	KindOnDemandView   Kind = "on_demand_feature_view"
	KindFeatureService Kind = "feature_service"
	requestPrefix           = "request"
	fullNameSeparator       = "__"
)

// Kinds lists every kind in plan order.
var Kinds = []Kind{KindEntity, KindSource, KindFeatureView, KindOnDemandView, KindFeatureService}

// Field is a named, typed column: an entity join key, a field of a source's
// declared schema, or a request field of an on-demand view.
type Field struct {
	Meta        `json:"-" yaml:"-"`
	Name        string    `json:"name" yaml:"name"`
	Type        ValueType `json:"type" yaml:"type"`
	Description string    `json:"description,omitempty" yaml:"description"`
}

// Entity is a thing features describe, identified by its join keys.
type Entity struct {
	Meta        `json:"-" yaml:"-"`
	Name        string            `json:"name" yaml:"name"`
	JoinKeys    []*Field          `json:"join_keys" yaml:"join_keys"`
	Description string            `json:"description,omitempty" yaml:"description"`
	Owner       string            `json:"owner,omitempty" yaml:"owner"`
	Tags        map[string]string `json:"tags,omitempty" yaml:"tags"`
}

// SourceKind says where a source's rows come from.
type SourceKind string

// The source kinds.
const (
	SourceParquet     SourceKind = "parquet"
	SourceDuckDBQuery SourceKind = "duckdb_query"
	SourceKafka       SourceKind = "kafka"
	SourcePush        SourceKind = "push"
)

// IsStream reports whether rows of this kind arrive continuously (kafka,
// push) rather than being read in batch.
func (k SourceKind) IsStream() bool { return k == SourceKafka || k == SourcePush }

// Source is where a feature view's rows come from.
type Source struct {
	Meta `json:"-" yaml:"-"`
	Name string     `json:"name" yaml:"name"`
	Kind SourceKind `json:"kind" yaml:"kind"`
	// Path is a Parquet file or glob relative to offline.data_root (parquet).
	Path string `json:"path,omitempty" yaml:"path"`
	// Query is DuckDB SQL over Parquet (duckdb_query).
	Query string `json:"query,omitempty" yaml:"query"`
	// Topic, Brokers and Format describe a Kafka stream (kafka). Brokers
	// default to quiver.yaml's kafka.brokers and may use ${VAR}, resolved
	// when the stream runs.
	Topic   string   `json:"topic,omitempty" yaml:"topic"`
	Brokers []string `json:"brokers,omitempty" yaml:"brokers"`
	Format  string   `json:"format,omitempty" yaml:"format"`
	// Schema declares the source's fields (required for kafka and push,
	// optional and checked when given for parquet and duckdb_query).
	Schema                []*Field          `json:"schema,omitempty" yaml:"schema"`
	TimestampField        string            `json:"timestamp_field" yaml:"timestamp_field"`
	CreatedTimestampField string            `json:"created_timestamp_field,omitempty" yaml:"created_timestamp_field"`
	FieldMapping          map[string]string `json:"field_mapping,omitempty" yaml:"field_mapping"`
	Description           string            `json:"description,omitempty" yaml:"description"`
	Owner                 string            `json:"owner,omitempty" yaml:"owner"`
	Tags                  map[string]string `json:"tags,omitempty" yaml:"tags"`
}

// SchemaField returns the declared schema field whose name, after
// field_mapping, is name; nil when the source declares no such field.
func (s *Source) SchemaField(name string) *Field {
	for _, f := range s.Schema {
		if s.Mapped(f.Name) == name {
			return f
		}
	}
	return nil
}

// Mapped returns the name a source column takes after field_mapping.
func (s *Source) Mapped(column string) string {
	if to, ok := s.FieldMapping[column]; ok {
		return to
	}
	return column
}

// Feature is a stored feature of a feature view.
type Feature struct {
	Meta        `json:"-" yaml:"-"`
	Name        string            `json:"name" yaml:"name"`
	Type        ValueType         `json:"type" yaml:"type"`
	Description string            `json:"description,omitempty" yaml:"description"`
	Tags        map[string]string `json:"tags,omitempty" yaml:"tags"`
}

// Aggregation functions.
const (
	AggCount = "count"
	AggSum   = "sum"
	AggAvg   = "avg"
	AggMin   = "min"
	AggMax   = "max"
	AggLast  = "last"
)

var aggFunctions = []string{AggCount, AggSum, AggAvg, AggMin, AggMax, AggLast}

// Aggregation is a windowed aggregate of a stream source's column.
type Aggregation struct {
	Meta     `json:"-" yaml:"-"`
	Name     string   `json:"name" yaml:"name"`
	Function string   `json:"function" yaml:"function"`
	Column   string   `json:"column,omitempty" yaml:"column"`
	Window   Duration `json:"window" yaml:"window"`
	// Type is the output type, derived from the function and column type
	// when the definitions are validated.
	Type ValueType `json:"type" yaml:"-"`
}

// DefaultHop is the tile size of a view with aggregations that names no hop.
const DefaultHop = Duration(60_000_000_000) // 1m

// FeatureView is a group of features of one or more entities from one source.
type FeatureView struct {
	Meta     `json:"-" yaml:"-"`
	Name     string   `json:"name" yaml:"name"`
	Entities []string `json:"entities" yaml:"entities"`
	Source   string   `json:"source" yaml:"source"`
	// TTL bounds how old a value may be and still be served or joined; 0
	// means unbounded.
	TTL Duration `json:"ttl" yaml:"ttl"`
	// Online says whether the view is materialized to the online store
	// (default true).
	Online   *bool      `json:"online" yaml:"online"`
	Features []*Feature `json:"features,omitempty" yaml:"features"`
	// Hop is the tile size of windowed aggregations (default 1m).
	Hop          Duration          `json:"hop,omitempty" yaml:"hop"`
	Aggregations []*Aggregation    `json:"aggregations,omitempty" yaml:"aggregations"`
	Description  string            `json:"description,omitempty" yaml:"description"`
	Owner        string            `json:"owner,omitempty" yaml:"owner"`
	Tags         map[string]string `json:"tags,omitempty" yaml:"tags"`
}

// IsOnline reports whether the view is materialized online.
func (v *FeatureView) IsOnline() bool { return v.Online == nil || *v.Online }

// OutputFeatures returns the view's features: its declared features, or for
// a view with aggregations, one feature per aggregation.
func (v *FeatureView) OutputFeatures() []*Feature {
	if len(v.Aggregations) == 0 {
		return v.Features
	}
	out := make([]*Feature, len(v.Aggregations))
	for i, a := range v.Aggregations {
		out[i] = &Feature{Meta: a.Meta, Name: a.Name, Type: a.Type}
	}
	return out
}

// OnDemandFeature is a feature computed at request time by a CEL expression.
type OnDemandFeature struct {
	Meta        `json:"-" yaml:"-"`
	Name        string    `json:"name" yaml:"name"`
	Type        ValueType `json:"type" yaml:"type"`
	Expr        string    `json:"expr" yaml:"expr"`
	Description string    `json:"description,omitempty" yaml:"description"`
}

// OnDemandView computes features from other views' features and request fields.
type OnDemandView struct {
	Meta        `json:"-" yaml:"-"`
	Name        string             `json:"name" yaml:"name"`
	Inputs      []string           `json:"inputs" yaml:"inputs"`
	Request     []*Field           `json:"request,omitempty" yaml:"request"`
	Features    []*OnDemandFeature `json:"features" yaml:"features"`
	Description string             `json:"description,omitempty" yaml:"description"`
	Owner       string             `json:"owner,omitempty" yaml:"owner"`
	Tags        map[string]string  `json:"tags,omitempty" yaml:"tags"`
}

// FeatureService is a named list of features for a model.
type FeatureService struct {
	Meta        `json:"-" yaml:"-"`
	Name        string            `json:"name" yaml:"name"`
	Features    []string          `json:"features" yaml:"features"`
	Description string            `json:"description,omitempty" yaml:"description"`
	Owner       string            `json:"owner,omitempty" yaml:"owner"`
	Tags        map[string]string `json:"tags,omitempty" yaml:"tags"`
}

// ObjectName returns the object's name.
func (e *Entity) ObjectName() string         { return e.Name }
func (s *Source) ObjectName() string         { return s.Name }
func (v *FeatureView) ObjectName() string    { return v.Name }
func (v *OnDemandView) ObjectName() string   { return v.Name }
func (s *FeatureService) ObjectName() string { return s.Name }

// Kind returns the object's kind.
func (*Entity) ObjectKind() Kind         { return KindEntity }
func (*Source) ObjectKind() Kind         { return KindSource }
func (*FeatureView) ObjectKind() Kind    { return KindFeatureView }
func (*OnDemandView) ObjectKind() Kind   { return KindOnDemandView }
func (*FeatureService) ObjectKind() Kind { return KindFeatureService }

// Definitions is every object of one project, each list sorted by name.
// It is immutable once loaded and safe for concurrent readers.
type Definitions struct {
	Project         string            `json:"project"`
	Entities        []*Entity         `json:"entities"`
	Sources         []*Source         `json:"sources"`
	FeatureViews    []*FeatureView    `json:"feature_views"`
	OnDemandViews   []*OnDemandView   `json:"on_demand_feature_views"`
	FeatureServices []*FeatureService `json:"feature_services"`

	once  sync.Once
	index map[string]Object
}

// Objects returns every object in plan order: by kind, then by name.
func (d *Definitions) Objects() []Object {
	var out []Object
	for _, e := range d.Entities {
		out = append(out, e)
	}
	for _, s := range d.Sources {
		out = append(out, s)
	}
	for _, v := range d.FeatureViews {
		out = append(out, v)
	}
	for _, v := range d.OnDemandViews {
		out = append(out, v)
	}
	for _, s := range d.FeatureServices {
		out = append(out, s)
	}
	return out
}

// Lookup returns the object named name (names are unique per project).
func (d *Definitions) Lookup(name string) (Object, bool) {
	d.once.Do(func() {
		d.index = make(map[string]Object)
		for _, o := range d.Objects() {
			if _, dup := d.index[o.ObjectName()]; !dup {
				d.index[o.ObjectName()] = o
			}
		}
	})
	o, ok := d.index[name]
	return o, ok
}

// Entity returns the entity named name, or nil.
func (d *Definitions) Entity(name string) *Entity { return lookupAs[*Entity](d, name) }

// Source returns the source named name, or nil.
func (d *Definitions) Source(name string) *Source { return lookupAs[*Source](d, name) }

// FeatureView returns the feature view named name, or nil.
func (d *Definitions) FeatureView(name string) *FeatureView { return lookupAs[*FeatureView](d, name) }

// OnDemandView returns the on-demand view named name, or nil.
func (d *Definitions) OnDemandView(name string) *OnDemandView {
	return lookupAs[*OnDemandView](d, name)
}

// FeatureService returns the feature service named name, or nil.
func (d *Definitions) FeatureService(name string) *FeatureService {
	return lookupAs[*FeatureService](d, name)
}

func lookupAs[T Object](d *Definitions, name string) T {
	var zero T
	o, ok := d.Lookup(name)
	if !ok {
		return zero
	}
	t, ok := o.(T)
	if !ok {
		return zero
	}
	return t
}

func (d *Definitions) sortObjects() {
	sortByName(d.Entities)
	sortByName(d.Sources)
	sortByName(d.FeatureViews)
	sortByName(d.OnDemandViews)
	sortByName(d.FeatureServices)
}

func sortByName[T Object](s []T) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].ObjectName() < s[j].ObjectName() })
}

// FeatureRef is a parsed feature reference view:feature; Feature "*" means
// every feature of the view.
type FeatureRef struct {
	View    string
	Feature string
}

func (r FeatureRef) String() string { return r.View + ":" + r.Feature }

// ParseFeatureRef parses "view:feature" or "view:*".
func ParseFeatureRef(s string) (FeatureRef, error) {
	view, feature, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || view == "" || feature == "" || strings.Contains(feature, ":") {
		return FeatureRef{}, fmt.Errorf("%q is not a feature reference (write view:feature or view:*)", Clip(s))
	}
	return FeatureRef{View: view, Feature: feature}, nil
}

// ResolvedFeature is one feature a reference resolved to.
type ResolvedFeature struct {
	View     string
	Feature  string
	Type     ValueType
	OnDemand bool
	// Output is the feature's column name in a response (set by
	// ResolveRequest).
	Output string
}

// FullName is the feature's name with full_feature_names: view__feature.
func (f ResolvedFeature) FullName() string { return f.View + fullNameSeparator + f.Feature }

// Resolve expands feature references (view:feature, view:*) into features,
// in reference order, without duplicates.
func (d *Definitions) Resolve(refs []string) ([]ResolvedFeature, error) {
	var out []ResolvedFeature
	seen := make(map[FeatureRef]bool)
	add := func(f ResolvedFeature) {
		k := FeatureRef{f.View, f.Feature}
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	for _, s := range refs {
		ref, err := ParseFeatureRef(s)
		if err != nil {
			return nil, err
		}
		fs, err := d.resolveRef(ref)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			add(f)
		}
	}
	return out, nil
}

func (d *Definitions) resolveRef(ref FeatureRef) ([]ResolvedFeature, error) {
	var all []ResolvedFeature
	var names []string
	if v := d.FeatureView(ref.View); v != nil {
		for _, f := range v.OutputFeatures() {
			all = append(all, ResolvedFeature{View: v.Name, Feature: f.Name, Type: f.Type})
			names = append(names, f.Name)
		}
	} else if v := d.OnDemandView(ref.View); v != nil {
		for _, f := range v.Features {
			all = append(all, ResolvedFeature{View: v.Name, Feature: f.Name, Type: f.Type, OnDemand: true})
			names = append(names, f.Name)
		}
	} else {
		var views []string
		for _, v := range d.FeatureViews {
			views = append(views, v.Name)
		}
		for _, v := range d.OnDemandViews {
			views = append(views, v.Name)
		}
		return nil, fmt.Errorf("%w: %q names no feature view%s", ErrNotFound, Clip(ref.String()), didYouMean(ref.View, views))
	}
	if ref.Feature == "*" {
		return all, nil
	}
	for _, f := range all {
		if f.Feature == ref.Feature {
			return []ResolvedFeature{f}, nil
		}
	}
	return nil, fmt.Errorf("%w: view %s has no feature %q%s", ErrNotFound, Clip(ref.View), Clip(ref.Feature), didYouMean(ref.Feature, names))
}

// JoinKeys returns a view's join keys in key order: the view's entities in
// order, each entity's keys in declaration order.
func (d *Definitions) JoinKeys(v *FeatureView) []*Field {
	var out []*Field
	for _, en := range v.Entities {
		if e := d.Entity(en); e != nil {
			out = append(out, e.JoinKeys...)
		}
	}
	return out
}

// ResolveRequest resolves what a lookup or training set asks for:
// feature references or a feature service (not both), each feature with
// its output name (Output: feature, or view__feature with fullNames).
// Two features with one output name are an error naming both views.
func (d *Definitions) ResolveRequest(refs []string, service string, fullNames bool) ([]ResolvedFeature, error) {
	switch {
	case service != "" && len(refs) > 0:
		return nil, errors.New("give features or a feature service, not both")
	case service != "":
		svc := d.FeatureService(service)
		if svc == nil {
			names := make([]string, len(d.FeatureServices))
			for i, s := range d.FeatureServices {
				names[i] = s.Name
			}
			return nil, fmt.Errorf("unknown feature service %q%s", Clip(service), didYouMean(service, names))
		}
		refs = svc.Features
	case len(refs) == 0:
		return nil, errors.New("no features requested (give feature references such as view:feature, or a feature service)")
	}
	feats, err := d.Resolve(refs)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), ErrNotFound.Error()+": "))
	}
	owner := map[string]string{}
	for i := range feats {
		f := &feats[i]
		f.Output = f.Feature
		if fullNames {
			f.Output = f.FullName()
		}
		if prev, dup := owner[f.Output]; dup {
			return nil, fmt.Errorf("feature name %q is in views %s and %s; request full feature names (view__feature) to tell them apart", f.Output, prev, f.View)
		}
		owner[f.Output] = f.View
	}
	return feats, nil
}
