package feast

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/quiverdata/quiver/registry"
)

// The files Translate writes, relative to the repository.
const (
	FileEntities     = "features/entities.yaml"
	FileSources      = "features/sources.yaml"
	FileViews        = "features/feature_views.yaml"
	FileStreamViews  = "features/stream_feature_views.yaml"
	FileOnDemand     = "features/on_demand.yaml"
	FileServices     = "features/feature_services.yaml"
	headerOfEachFile = "# Imported from Feast project %s by quiver import feast; see docs/migrating-from-feast.md.\n"
)

// yamlw writes block YAML line by line.
type yamlw struct{ b strings.Builder }

func (w *yamlw) line(indent int, format string, args ...any) {
	w.b.WriteString(strings.Repeat(" ", indent))
	fmt.Fprintf(&w.b, format, args...)
	w.b.WriteByte('\n')
}

var plainRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./@+-]*$`)

var yamlKeywords = map[string]bool{"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true,
	"null": true, "y": true, "n": true, "~": true}

// yamlScalar writes s as a YAML string: plain when that reads back as the
// same string, double-quoted otherwise.
func yamlScalar(s string) string {
	if plainRE.MatchString(s) && !yamlKeywords[strings.ToLower(s)] {
		return s
	}
	return strconv.Quote(s) // Go's escapes are all YAML double-quoted escapes
}

func (w *yamlw) tags(indent int, key string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	w.line(indent, "%s:", key)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.line(indent+2, "%s: %s", yamlScalar(k), yamlScalar(m[k]))
	}
}

func (w *yamlw) str(indent int, key, v string) {
	if v != "" {
		w.line(indent, "%s: %s", key, yamlScalar(v))
	}
}

func (w *yamlw) field(indent int, f *registry.Field) {
	w.line(indent, "- {name: %s, type: %s}", yamlScalar(f.Name), yamlScalar(f.Type.String()))
}

func (t *translator) render(res *Result, project string) {
	header := fmt.Sprintf(headerOfEachFile, t.project)

	var cfg yamlw
	cfg.b.WriteString(header)
	cfg.line(0, "project: %s", project)
	cfg.line(0, "registry: .quiver/registry")
	cfg.line(0, "offline:")
	cfg.line(2, "# Feast resolves relative source paths against its repository; source paths here")
	cfg.line(2, "# are relative to data_root, which points at it.")
	cfg.line(2, "data_root: %s", yamlScalar(t.dataRootForConfig()))
	cfg.line(0, "online:")
	cfg.line(2, "# The Feast registry does not hold the online store's connection (feature_store.yaml")
	cfg.line(2, "# does): the embedded store is the local default; for Redis write type: redis, addr: ${REDIS_ADDR}.")
	cfg.line(2, "type: embedded")
	cfg.line(2, "path: .quiver/online")
	res.Files = append(res.Files, File{Path: registry.ConfigFile, Data: []byte(cfg.b.String())})
	t.add(Changed, kindProject, t.project, "the online store's connection is in Feast's feature_store.yaml, not in the registry: quiver.yaml uses the embedded store; set online.type: redis and online.addr for Redis")

	var ents []*registry.Entity
	for _, e := range t.entities {
		ents = append(ents, e)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	if len(ents) > 0 {
		var w yamlw
		w.b.WriteString(header)
		w.line(0, "entities:")
		for _, e := range ents {
			w.line(2, "- name: %s", e.Name)
			w.str(4, "description", e.Description)
			w.str(4, "owner", e.Owner)
			w.tags(4, "tags", e.Tags)
			w.line(4, "join_keys:")
			for _, k := range e.JoinKeys {
				w.field(6, k)
			}
		}
		res.Files = append(res.Files, File{Path: FileEntities, Data: []byte(w.b.String())})
		res.Entities = len(ents)
	}

	var srcs []*registry.Source
	for _, st := range t.sources {
		if st.q != nil {
			srcs = append(srcs, st.q)
		}
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].Name < srcs[j].Name })
	if len(srcs) > 0 {
		var w yamlw
		w.b.WriteString(header)
		w.line(0, "sources:")
		for _, s := range srcs {
			w.line(2, "- name: %s", s.Name)
			w.line(4, "kind: %s", s.Kind)
			w.str(4, "description", s.Description)
			w.str(4, "owner", s.Owner)
			w.tags(4, "tags", s.Tags)
			w.str(4, "path", s.Path)
			w.str(4, "topic", s.Topic)
			if len(s.Brokers) > 0 {
				w.line(4, "brokers:")
				for _, b := range s.Brokers {
					w.line(6, "- %s", yamlScalar(b))
				}
			}
			w.str(4, "format", s.Format)
			w.line(4, "timestamp_field: %s", yamlScalar(s.TimestampField))
			w.str(4, "created_timestamp_field", s.CreatedTimestampField)
			w.tags(4, "field_mapping", s.FieldMapping)
			if len(s.Schema) > 0 {
				w.line(4, "schema:")
				for _, f := range s.Schema {
					w.field(6, f)
				}
			}
		}
		res.Files = append(res.Files, File{Path: FileSources, Data: []byte(w.b.String())})
		res.Sources = len(srcs)
	}

	var plain, stream []*viewState
	for _, vs := range t.viewOrder {
		if vs.kind == kindStreamView {
			stream = append(stream, vs)
		} else {
			plain = append(plain, vs)
		}
	}
	for _, group := range []struct {
		file  string
		views []*viewState
	}{{FileViews, plain}, {FileStreamViews, stream}} {
		if len(group.views) == 0 {
			continue
		}
		sort.Slice(group.views, func(i, j int) bool { return group.views[i].q.Name < group.views[j].q.Name })
		var w yamlw
		w.b.WriteString(header)
		w.line(0, "feature_views:")
		for _, vs := range group.views {
			renderView(&w, vs.q)
		}
		res.Files = append(res.Files, File{Path: group.file, Data: []byte(w.b.String())})
		res.FeatureViews += len(group.views)
	}

	if len(t.onDemand) > 0 {
		var w yamlw
		w.b.WriteString(header)
		w.line(0, "# Feast on-demand feature views are Python functions; Quiver's are CEL expressions.")
		w.line(0, "# Each view below is commented out until it is ported.")
		for _, block := range t.onDemand {
			w.b.WriteString("\n")
			w.b.WriteString(block)
		}
		res.Files = append(res.Files, File{Path: FileOnDemand, Data: []byte(w.b.String())})
		res.OnDemandToPort = len(t.onDemand)
	}

	if len(t.services) > 0 {
		sort.Slice(t.services, func(i, j int) bool { return t.services[i].Name < t.services[j].Name })
		var w yamlw
		w.b.WriteString(header)
		w.line(0, "feature_services:")
		for _, s := range t.services {
			w.line(2, "- name: %s", s.Name)
			w.str(4, "description", s.Description)
			w.str(4, "owner", s.Owner)
			w.tags(4, "tags", s.Tags)
			w.line(4, "features:")
			for _, f := range s.Features {
				w.line(6, "- %s", yamlScalar(f))
			}
			for _, c := range t.svcComments[s.Name] {
				w.line(6, "# - %s", c)
			}
		}
		res.Files = append(res.Files, File{Path: FileServices, Data: []byte(w.b.String())})
		res.FeatureServices = len(t.services)
	}
}

func renderView(w *yamlw, v *registry.FeatureView) {
	w.line(2, "- name: %s", v.Name)
	w.str(4, "description", v.Description)
	w.str(4, "owner", v.Owner)
	w.tags(4, "tags", v.Tags)
	w.line(4, "entities: [%s]", strings.Join(v.Entities, ", "))
	w.line(4, "source: %s", v.Source)
	if v.TTL == 0 {
		w.line(4, "ttl: 0                          # no age limit, as ttl 0 in Feast")
	} else {
		w.line(4, "ttl: %s", v.TTL)
	}
	w.line(4, "online: %t", v.IsOnline())
	if len(v.Aggregations) > 0 {
		w.line(4, "hop: %s", v.Hop)
		w.line(4, "aggregations:")
		for _, a := range v.Aggregations {
			if a.Column == "" {
				w.line(6, "- {name: %s, function: %s, window: %s}", a.Name, a.Function, a.Window)
			} else {
				w.line(6, "- {name: %s, function: %s, column: %s, window: %s}", a.Name, a.Function, a.Column, a.Window)
			}
		}
		return
	}
	w.line(4, "features:")
	for _, f := range v.Features {
		if f.Description == "" && len(f.Tags) == 0 {
			w.line(6, "- {name: %s, type: %s}", f.Name, yamlScalar(f.Type.String()))
			continue
		}
		w.line(6, "- name: %s", f.Name)
		w.line(8, "type: %s", yamlScalar(f.Type.String()))
		w.str(8, "description", f.Description)
		w.tags(8, "tags", f.Tags)
	}
}

// dataRootForConfig is the data root as quiver.yaml states it: relative
// to the output directory when it can be, so that the two move together.
func (t *translator) dataRootForConfig() string {
	if t.opts.OutDir != "" {
		if rel, err := filepath.Rel(t.opts.OutDir, t.dataRoot); err == nil {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.ToSlash(t.dataRoot)
}
