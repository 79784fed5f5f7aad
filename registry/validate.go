package registry

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/value"
)

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// checkName returns why s is not a valid name, or "".
func checkName(s string) string {
	switch {
	case s == "":
		return "is required"
	case len(s) > 128:
		return fmt.Sprintf("%q is too long (at most 128 characters)", Clip(s))
	case !nameRE.MatchString(s):
		return fmt.Sprintf("%q is not a valid name (lowercase letters, digits and _, starting with a letter or _; e.g. %s)", Clip(s), Clip(suggestName(s)))
	case strings.Contains(s, fullNameSeparator):
		return fmt.Sprintf("%q must not contain %q, which separates view and feature in full feature names", Clip(s), fullNameSeparator)
	}
	return ""
}

func suggestName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r == '-' || r == ' ' || r == '.':
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == "" || (out[0] >= '0' && out[0] <= '9') {
		out = "_" + out
	}
	return strings.ReplaceAll(out, fullNameSeparator, "_")
}

// ensureDefaults fills defaults so that snapshots state them explicitly.
func (d *Definitions) ensureDefaults() {
	for _, s := range d.Sources {
		if s.Kind == SourceKafka && s.Format == "" {
			s.Format = "json"
		}
	}
	for _, v := range d.FeatureViews {
		if v.Online == nil {
			on := true
			v.Online = &on
		}
		if len(v.Aggregations) > 0 && v.Hop == 0 {
			v.Hop = DefaultHop
		}
		for _, a := range v.Aggregations {
			if a.Name == "" && a.Function != "" {
				parts := []string{a.Function}
				if a.Column != "" {
					parts = append(parts, a.Column)
				}
				a.Name = strings.Join(append(parts, a.Window.String()), "_")
			}
		}
	}
}

type validator struct {
	defs *Definitions
	errs ErrorList
}

func (v *validator) bad(m *Meta, sub, format string, args ...any) {
	field := subPath(m.Path, sub)
	v.errs = append(v.errs, &Error{Pos: m.At(sub), Field: field, Msg: messagef(format, args...)})
}

// validate checks names, references, types and expressions of the whole
// set, returning every problem.
func (d *Definitions) validate() ErrorList {
	v := &validator{defs: d}
	v.names()
	for _, e := range d.Entities {
		v.entity(e)
	}
	for _, s := range d.Sources {
		v.source(s)
	}
	for _, fv := range d.FeatureViews {
		v.featureView(fv)
	}
	for _, od := range d.OnDemandViews {
		v.onDemandView(od)
	}
	for _, fs := range d.FeatureServices {
		v.featureService(fs)
	}
	return v.errs
}

// names checks that every object has a valid name, unique in the project.
func (v *validator) names() {
	seen := make(map[string]Object)
	for _, o := range v.defs.Objects() {
		m := o.meta()
		name := o.ObjectName()
		if msg := checkName(name); msg != "" {
			v.bad(m, "name", "%s", msg)
			continue
		}
		if prev, dup := seen[name]; dup {
			v.bad(m, "name", "%q is already the name of %s at %s; names are unique in a project", name, prev.ObjectKind(), prev.meta().Pos())
			continue
		}
		if name == requestPrefix && (o.ObjectKind() == KindFeatureView || o.ObjectKind() == KindOnDemandView) {
			v.bad(m, "name", "%q is reserved for request fields in on-demand expressions; pick another view name", name)
		}
		seen[name] = o
	}
}

// fields checks a list of named, typed fields: names valid and unique,
// types given.
func (v *validator) fields(m *Meta, list string, fs []*Field, required bool) {
	if required && len(fs) == 0 {
		v.bad(m, list, "is required: list at least one {name, type}")
	}
	seen := make(map[string]bool)
	for i, f := range fs {
		sub := fmt.Sprintf("%s[%d]", list, i)
		if msg := checkName(f.Name); msg != "" {
			v.bad(m, sub+".name", "%s", msg)
		} else if seen[f.Name] {
			v.bad(m, sub+".name", "%q is listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Type.IsZero() {
			v.bad(m, sub+".type", "is required (%s)", value.TypeHint)
		}
	}
}

func (v *validator) entity(e *Entity) {
	v.fields(&e.Meta, "join_keys", e.JoinKeys, true)
	for i, k := range e.JoinKeys {
		if !k.Type.IsZero() && k.Type != TypeInt64 && k.Type != TypeString {
			v.bad(&e.Meta, fmt.Sprintf("join_keys[%d].type", i), "join keys are int64 or string, not %s", k.Type)
		}
	}
}

var sourceKinds = []string{string(SourceParquet), string(SourceDuckDBQuery), string(SourceKafka), string(SourcePush)}

func (v *validator) source(s *Source) {
	m := &s.Meta
	notFor := func(field string, set bool) {
		if set {
			v.bad(m, field, "is not used by %s sources", s.Kind)
		}
	}
	switch s.Kind {
	case SourceParquet:
		switch {
		case s.Path == "":
			v.bad(m, "path", "is required for parquet sources: a file or glob under offline.data_root, e.g. driver_stats/*.parquet")
		case strings.Contains(s.Path, "://"):
			u, err := storage.ParseURI(s.Path)
			switch {
			case err != nil:
				v.bad(m, "path", "%s", strings.TrimPrefix(err.Error(), storage.ErrInvalid.Error()+": "))
			case u.IsLocal():
				v.bad(m, "path", "%q is absolute; paths are relative to offline.data_root, or s3://bucket/key URIs", s.Path)
			case u.Key == "":
				v.bad(m, "path", "%q names a bucket but no object; give s3://bucket/key or a glob such as s3://bucket/prefix/*.parquet", s.Path)
			default:
				if err := storage.CheckGlob(u.Key); err != nil {
					v.bad(m, "path", "%s", strings.TrimPrefix(err.Error(), storage.ErrInvalid.Error()+": "))
				}
			}
		case path.IsAbs(s.Path) || strings.HasPrefix(s.Path, "/"):
			v.bad(m, "path", "%q is absolute; paths are relative to offline.data_root so that a repository works on every machine", s.Path)
		case path.Clean(s.Path) == ".." || strings.HasPrefix(path.Clean(s.Path), "../"):
			v.bad(m, "path", "%q leaves offline.data_root", s.Path)
		default:
			if _, err := path.Match(s.Path, ""); err != nil {
				v.bad(m, "path", "%q is not a valid glob: %v", s.Path, err)
			}
		}
		notFor("query", s.Query != "")
	case SourceDuckDBQuery:
		if strings.TrimSpace(s.Query) == "" {
			v.bad(m, "query", "is required for duckdb_query sources: SQL over Parquet, e.g. SELECT * FROM read_parquet('trips/*.parquet')")
		}
		notFor("path", s.Path != "")
	case SourceKafka:
		if s.Topic == "" {
			v.bad(m, "topic", "is required for kafka sources")
		}
		switch s.Format {
		case "json":
		case "protobuf", "avro":
			v.bad(m, "format", "%q is not supported yet; use json", s.Format)
		default:
			v.bad(m, "format", "%q is not a message format (json)", s.Format)
		}
		notFor("path", s.Path != "")
		notFor("query", s.Query != "")
	case SourcePush:
		notFor("path", s.Path != "")
		notFor("query", s.Query != "")
	case "":
		v.bad(m, "kind", "is required (one of %s)", strings.Join(sourceKinds, ", "))
	default:
		v.bad(m, "kind", "%q is not a source kind (one of %s)%s", s.Kind, strings.Join(sourceKinds, ", "), didYouMean(string(s.Kind), sourceKinds))
	}
	if s.Kind != SourceKafka {
		notFor("topic", s.Topic != "")
		notFor("brokers", len(s.Brokers) > 0)
		notFor("format", s.Format != "")
	}
	if s.Kind.IsStream() && len(s.Schema) == 0 {
		v.bad(m, "schema", "is required for %s sources: the fields of each message, e.g. - {name: driver_id, type: int64}", s.Kind)
	} else {
		v.fields(m, "schema", s.Schema, false)
	}
	if s.TimestampField == "" {
		v.bad(m, "timestamp_field", "is required: the column holding each row's event time")
	}
	v.sourceColumn(s, "timestamp_field", s.TimestampField, TypeTimestamp)
	v.sourceColumn(s, "created_timestamp_field", s.CreatedTimestampField, TypeTimestamp)
	if s.CreatedTimestampField != "" && s.CreatedTimestampField == s.TimestampField {
		v.bad(m, "created_timestamp_field", "is the same column as timestamp_field")
	}
	targets := make(map[string]string)
	for _, from := range sortedKeys(s.FieldMapping) {
		to := s.FieldMapping[from]
		if msg := checkName(to); msg != "" {
			v.bad(m, "field_mapping."+from, "%s", msg)
			continue
		}
		if prev, dup := targets[to]; dup {
			v.bad(m, "field_mapping."+from, "maps to %q, as %q does", to, prev)
		}
		targets[to] = from
		if len(s.Schema) > 0 && !hasField(s.Schema, from) {
			v.bad(m, "field_mapping."+from, "%q is not a field of the declared schema%s", from, didYouMean(from, fieldNames(s.Schema)))
		}
	}
}

// sourceColumn checks that a column named by a source (before mapping) is
// in its declared schema with the wanted type, when a schema is declared.
func (v *validator) sourceColumn(s *Source, field, col string, want ValueType) {
	if col == "" || len(s.Schema) == 0 {
		return
	}
	for _, f := range s.Schema {
		if f.Name == col {
			if !f.Type.IsZero() && f.Type != want {
				v.bad(&s.Meta, field, "%q is declared %s in the schema; it must be %s", col, f.Type, want)
			}
			return
		}
	}
	v.bad(&s.Meta, field, "%q is not a field of the declared schema%s", col, didYouMean(col, fieldNames(s.Schema)))
}

func (v *validator) featureView(fv *FeatureView) {
	m := &fv.Meta
	d := v.defs
	if len(fv.Entities) == 0 {
		v.bad(m, "entities", "is required: the entities the view describes, e.g. [driver]")
	}
	joinKeys := make(map[string]*Field)
	seenEnt := make(map[string]bool)
	for i, name := range fv.Entities {
		sub := fmt.Sprintf("entities[%d]", i)
		if seenEnt[name] {
			v.bad(m, sub, "%q is listed twice", name)
			continue
		}
		seenEnt[name] = true
		e := d.Entity(name)
		if e == nil {
			v.bad(m, sub, "unknown entity %q%s", name, didYouMean(name, objectNames(d.Entities)))
			continue
		}
		for _, k := range e.JoinKeys {
			if prev, dup := joinKeys[k.Name]; dup && prev.Type != k.Type {
				v.bad(m, sub, "entity %s has join key %s of type %s, another entity of the view has it as %s", name, k.Name, k.Type, prev.Type)
			}
			joinKeys[k.Name] = k
		}
	}
	var src *Source
	if fv.Source == "" {
		v.bad(m, "source", "is required: the name of a source")
	} else if src = d.Source(fv.Source); src == nil {
		v.bad(m, "source", "unknown source %q%s", fv.Source, didYouMean(fv.Source, objectNames(d.Sources)))
	}
	if src != nil && len(src.Schema) > 0 {
		for _, name := range sortedKeys(joinKeys) {
			k := joinKeys[name]
			f := src.SchemaField(name)
			switch {
			case f == nil:
				v.bad(m, "source", "source %s declares no field %q, the join key of its entities", src.Name, name)
			case !f.Type.IsZero() && !k.Type.IsZero() && f.Type != k.Type:
				v.bad(m, "source", "join key %s is %s in its entity but %s in source %s", name, k.Type, f.Type, src.Name)
			}
		}
	}
	switch {
	case len(fv.Features) > 0 && len(fv.Aggregations) > 0:
		v.bad(m, "aggregations", "a view declares either features or aggregations, not both")
	case len(fv.Features) == 0 && len(fv.Aggregations) == 0:
		v.bad(m, "features", "is required: list at least one {name, type} (or aggregations, for a stream source)")
	}
	seen := make(map[string]bool)
	for i, f := range fv.Features {
		sub := fmt.Sprintf("features[%d]", i)
		switch msg := checkName(f.Name); {
		case msg != "":
			v.bad(m, sub+".name", "%s", msg)
			continue
		case seen[f.Name]:
			v.bad(m, sub+".name", "%q is listed twice", f.Name)
			continue
		case joinKeys[f.Name] != nil:
			v.bad(m, sub+".name", "%q is also a join key of the view's entities; features and join keys share the row", f.Name)
		}
		seen[f.Name] = true
		if f.Type.IsZero() {
			v.bad(m, sub+".type", "is required (%s)", value.TypeHint)
			continue
		}
		if src != nil && len(src.Schema) > 0 {
			sf := src.SchemaField(f.Name)
			switch {
			case sf == nil:
				v.bad(m, sub+".name", "source %s declares no field %q%s", src.Name, f.Name, didYouMean(f.Name, mappedNames(src)))
			case !sf.Type.IsZero() && sf.Type != f.Type:
				v.bad(m, sub+".type", "is %s, but source %s declares %s as %s", f.Type, src.Name, sf.Name, sf.Type)
			}
		}
	}
	if len(fv.Aggregations) == 0 {
		if fv.Hop != 0 {
			v.bad(m, "hop", "is the tile size of aggregations; this view has none")
		}
		return
	}
	if src != nil && !src.Kind.IsStream() {
		v.bad(m, "aggregations", "need a stream source (kafka or push); %s is %s", src.Name, src.Kind)
	}
	if fv.Hop <= 0 {
		v.bad(m, "hop", "must be positive, e.g. 1m")
	}
	for i, a := range fv.Aggregations {
		v.aggregation(fv, src, i, a, seen, joinKeys)
	}
}

func (v *validator) aggregation(fv *FeatureView, src *Source, i int, a *Aggregation, seen map[string]bool, joinKeys map[string]*Field) {
	m := &fv.Meta
	sub := fmt.Sprintf("aggregations[%d]", i)
	fn := a.Function
	switch {
	case fn == "":
		v.bad(m, sub+".function", "is required (one of %s)", strings.Join(aggFunctions, ", "))
		return
	case !contains(aggFunctions, fn):
		v.bad(m, sub+".function", "%q is not an aggregation function (one of %s)%s", fn, strings.Join(aggFunctions, ", "), didYouMean(fn, aggFunctions))
		return
	}
	switch msg := checkName(a.Name); {
	case msg != "":
		v.bad(m, sub+".name", "%s", msg)
	case seen[a.Name]:
		v.bad(m, sub+".name", "%q is listed twice", a.Name)
	case joinKeys[a.Name] != nil:
		v.bad(m, sub+".name", "%q is also a join key of the view's entities", a.Name)
	}
	seen[a.Name] = true
	switch {
	case a.Window <= 0:
		v.bad(m, sub+".window", "is required: how far back the aggregate looks, e.g. 1h or 7d")
	case fv.Hop > 0 && a.Window%fv.Hop != 0:
		v.bad(m, sub+".window", "%s is not a multiple of the view's hop %s", a.Window, fv.Hop)
	}
	if a.Column == "" {
		if fn != AggCount {
			v.bad(m, sub+".column", "is required for %s", fn)
		}
		a.Type = TypeInt64
		return
	}
	var col *Field
	if src != nil {
		if col = src.SchemaField(a.Column); col == nil {
			v.bad(m, sub+".column", "source %s declares no field %q%s", src.Name, a.Column, didYouMean(a.Column, mappedNames(src)))
			return
		}
	}
	if col == nil || col.Type.IsZero() {
		return
	}
	t := col.Type
	switch fn {
	case AggCount:
		a.Type = TypeInt64
	case AggSum, AggAvg:
		if t.List || !t.Elem.Numeric() {
			v.bad(m, sub+".column", "%s needs a numeric column; %s is %s", fn, a.Column, t)
			return
		}
		switch {
		case fn == AggAvg || t.Elem == Float32 || t.Elem == Float64:
			a.Type = ValueType{Elem: Float64}
		default:
			a.Type = TypeInt64
		}
	case AggMin, AggMax:
		if t.List || !(t.Elem.Numeric() || t.Elem == Timestamp) {
			v.bad(m, sub+".column", "%s needs a numeric or timestamp column; %s is %s", fn, a.Column, t)
			return
		}
		a.Type = t
	case AggLast:
		a.Type = t
	}
}

func (v *validator) onDemandView(od *OnDemandView) {
	m := &od.Meta
	d := v.defs
	if len(od.Inputs) == 0 {
		v.bad(m, "inputs", "is required: the feature views whose features the expressions read")
	}
	var inputs []*FeatureView
	seen := make(map[string]bool)
	for i, name := range od.Inputs {
		sub := fmt.Sprintf("inputs[%d]", i)
		if seen[name] {
			v.bad(m, sub, "%q is listed twice", name)
			continue
		}
		seen[name] = true
		fv := d.FeatureView(name)
		if fv == nil {
			hint := didYouMean(name, objectNames(d.FeatureViews))
			if d.OnDemandView(name) != nil {
				hint = " (inputs are feature views; an on-demand view cannot read another)"
			}
			v.bad(m, sub, "unknown feature view %q%s", name, hint)
			continue
		}
		inputs = append(inputs, fv)
	}
	v.fields(m, "request", od.Request, false)
	if len(od.Features) == 0 {
		v.bad(m, "features", "is required: list at least one {name, type, expr}")
	}
	env, envErr := newExprEnv(inputs, od.Request)
	if envErr != nil {
		v.bad(m, "inputs", "cannot build the expression environment: %v", envErr)
	}
	names := make(map[string]bool)
	for i, f := range od.Features {
		sub := fmt.Sprintf("features[%d]", i)
		if msg := checkName(f.Name); msg != "" {
			v.bad(m, sub+".name", "%s", msg)
		} else if names[f.Name] {
			v.bad(m, sub+".name", "%q is listed twice", f.Name)
		}
		names[f.Name] = true
		if f.Type.IsZero() {
			v.bad(m, sub+".type", "is required (%s)", value.TypeHint)
		}
		if strings.TrimSpace(f.Expr) == "" {
			v.bad(m, sub+".expr", "is required: a CEL expression, e.g. %s", exampleExpr(inputs))
			continue
		}
		if env != nil && !f.Type.IsZero() {
			if msg := env.check(f.Expr, f.Type); msg != "" {
				v.bad(m, sub+".expr", "%s", msg)
			}
		}
	}
}

func exampleExpr(inputs []*FeatureView) string {
	for _, fv := range inputs {
		for _, f := range fv.OutputFeatures() {
			return fv.Name + "." + f.Name
		}
	}
	return "view.feature * request.field"
}

func (v *validator) featureService(fs *FeatureService) {
	m := &fs.Meta
	if len(fs.Features) == 0 {
		v.bad(m, "features", "is required: feature references such as driver_hourly:conv_rate or driver_hourly:*")
	}
	seen := make(map[string]bool)
	for i, ref := range fs.Features {
		sub := fmt.Sprintf("features[%d]", i)
		if seen[ref] {
			v.bad(m, sub, "%q is listed twice", ref)
			continue
		}
		seen[ref] = true
		if _, err := v.defs.Resolve([]string{ref}); err != nil {
			v.bad(m, sub, "%s", strings.TrimPrefix(err.Error(), ErrNotFound.Error()+": "))
		}
	}
}

func hasField(fs []*Field, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

func fieldNames(fs []*Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

func mappedNames(s *Source) []string {
	out := make([]string, len(s.Schema))
	for i, f := range s.Schema {
		out[i] = s.Mapped(f.Name)
	}
	return out
}

func objectNames[T Object](objs []T) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.ObjectName()
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
