package registry

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// Action is what a plan does to an object.
type Action string

// Plan actions.
const (
	ActionCreate    Action = "create"
	ActionUpdate    Action = "update"
	ActionDelete    Action = "delete"
	ActionUnchanged Action = "unchanged"
)

// Plan is the difference between the applied definitions and a repository.
type Plan struct {
	Project string `json:"project"`
	// FromVersion is the registry version compared against (0: none yet);
	// ToVersion the version an apply wrote (0 in a plan).
	FromVersion int64    `json:"from_version"`
	ToVersion   int64    `json:"to_version,omitempty"`
	Changes     []Change `json:"changes"`
	Summary     Summary  `json:"summary"`
}

// Summary counts a plan's changes.
type Summary struct {
	Create    int `json:"create"`
	Update    int `json:"update"`
	Delete    int `json:"delete"`
	Unchanged int `json:"unchanged"`
	Breaking  int `json:"breaking"`
}

// Change is what happens to one object.
type Change struct {
	Kind     Kind   `json:"kind"`
	Name     string `json:"name"`
	Action   Action `json:"action"`
	Breaking bool   `json:"breaking,omitempty"`
	// Reason says why a delete is breaking.
	Reason string `json:"reason,omitempty"`
	// Fields lists the changed fields of an update.
	Fields []FieldChange `json:"fields,omitempty"`
}

// FieldChange is one changed field. Old is absent for an added field or
// list item, New for a removed one.
type FieldChange struct {
	Path     string `json:"path"`
	Old      any    `json:"old,omitempty"`
	New      any    `json:"new,omitempty"`
	Breaking bool   `json:"breaking,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// HasChanges reports whether applying the plan would write a version.
func (p *Plan) HasChanges() bool {
	s := p.Summary
	return s.Create+s.Update+s.Delete > 0
}

// Breaking reports whether any change is breaking.
func (p *Plan) Breaking() bool { return p.Summary.Breaking > 0 }

// Diff compares the applied definitions (nil when nothing is applied yet)
// with new ones.
func Diff(old, new *Definitions) *Plan {
	p := &Plan{Project: new.Project, Changes: []Change{}}
	oldObjs := map[string]Object{}
	if old != nil {
		for _, o := range old.Objects() {
			oldObjs[string(o.ObjectKind())+"/"+o.ObjectName()] = o
		}
	}
	newObjs := map[string]Object{}
	for _, o := range new.Objects() {
		newObjs[string(o.ObjectKind())+"/"+o.ObjectName()] = o
	}
	for _, kind := range Kinds {
		var names []string
		seen := map[string]bool{}
		for _, m := range []map[string]Object{oldObjs, newObjs} {
			for key, o := range m {
				if o.ObjectKind() == kind && !seen[key] {
					seen[key] = true
					names = append(names, o.ObjectName())
				}
			}
		}
		sort.Strings(names)
		for _, name := range names {
			key := string(kind) + "/" + name
			p.Changes = append(p.Changes, diffObject(kind, name, oldObjs[key], newObjs[key]))
		}
	}
	for _, c := range p.Changes {
		switch c.Action {
		case ActionCreate:
			p.Summary.Create++
		case ActionUpdate:
			p.Summary.Update++
		case ActionDelete:
			p.Summary.Delete++
		case ActionUnchanged:
			p.Summary.Unchanged++
		}
		if c.Breaking {
			p.Summary.Breaking++
		}
	}
	return p
}

func diffObject(kind Kind, name string, old, new Object) Change {
	c := Change{Kind: kind, Name: name}
	switch {
	case old == nil:
		c.Action = ActionCreate
		return c
	case new == nil:
		c.Action = ActionDelete
		if kind == KindFeatureView || kind == KindOnDemandView || kind == KindFeatureService {
			c.Breaking = true
			c.Reason = "models and services reading its features lose them"
		}
		return c
	}
	a, b := generic(old), generic(new)
	diffValues("", a, b, &c.Fields)
	if len(c.Fields) == 0 {
		c.Action = ActionUnchanged
		return c
	}
	c.Action = ActionUpdate
	for i := range c.Fields {
		f := &c.Fields[i]
		f.Reason = breakingReason(kind, f)
		f.Breaking = f.Reason != ""
		c.Breaking = c.Breaking || f.Breaking
	}
	return c
}

// generic turns an object into JSON-shaped values for comparison.
func generic(o Object) any {
	b, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("registry: encode %s %s: %v", o.ObjectKind(), o.ObjectName(), err)) // model types always encode
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		panic(fmt.Sprintf("registry: decode %s %s: %v", o.ObjectKind(), o.ObjectName(), err))
	}
	return v
}

func diffValues(path string, a, b any, out *[]FieldChange) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		for _, k := range sortedKeys(keys) {
			x, inA := av[k]
			y, inB := bv[k]
			switch {
			case inA && inB:
				diffValues(join(path, k), x, y, out)
			case inA:
				*out = append(*out, FieldChange{Path: join(path, k), Old: x})
			default:
				*out = append(*out, FieldChange{Path: join(path, k), New: y})
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		if diffNamedList(path, av, bv, out) || diffScalarList(path, av, bv, out) {
			return
		}
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, FieldChange{Path: path, Old: a, New: b})
	}
}

// diffNamedList compares lists of objects with names (features, join keys,
// schema fields) item by item, by name. It reports false for other lists.
func diffNamedList(path string, a, b []any, out *[]FieldChange) bool {
	names := func(l []any) ([]string, map[string]any, bool) {
		var order []string
		m := map[string]any{}
		for _, x := range l {
			obj, ok := x.(map[string]any)
			if !ok {
				return nil, nil, false
			}
			n, ok := obj["name"].(string)
			if !ok {
				return nil, nil, false
			}
			if _, dup := m[n]; dup {
				return nil, nil, false
			}
			order = append(order, n)
			m[n] = obj
		}
		return order, m, true
	}
	an, am, ok1 := names(a)
	bn, bm, ok2 := names(b)
	if !ok1 || !ok2 || (len(a) == 0 && len(b) == 0) {
		return false
	}
	for _, n := range an {
		if y, ok := bm[n]; ok {
			diffValues(path+"."+n, am[n], y, out)
		} else {
			*out = append(*out, FieldChange{Path: path + "." + n, Old: am[n]})
		}
	}
	for _, n := range bn {
		if _, ok := am[n]; !ok {
			*out = append(*out, FieldChange{Path: path + "." + n, New: bm[n]})
		}
	}
	diffOrder(path, an, bn, am, bm, out)
	return true
}

// diffScalarList compares lists of strings as sets plus order.
func diffScalarList(path string, a, b []any, out *[]FieldChange) bool {
	strs := func(l []any) ([]string, map[string]any, bool) {
		var s []string
		m := map[string]any{}
		for _, x := range l {
			str, ok := x.(string)
			if !ok {
				return nil, nil, false
			}
			s = append(s, str)
			m[str] = x
		}
		return s, m, true
	}
	as, am, ok1 := strs(a)
	bs, bm, ok2 := strs(b)
	if !ok1 || !ok2 {
		return false
	}
	for _, s := range as {
		if _, ok := bm[s]; !ok {
			*out = append(*out, FieldChange{Path: path, Old: s})
		}
	}
	for _, s := range bs {
		if _, ok := am[s]; !ok {
			*out = append(*out, FieldChange{Path: path, New: s})
		}
	}
	diffOrder(path, as, bs, am, bm, out)
	return true
}

// diffOrder reports a reordering of the items both lists keep.
func diffOrder(path string, a, b []string, am, bm map[string]any, out *[]FieldChange) {
	var ka, kb []string
	for _, n := range a {
		if _, ok := bm[n]; ok {
			ka = append(ka, n)
		}
	}
	for _, n := range b {
		if _, ok := am[n]; ok {
			kb = append(kb, n)
		}
	}
	if !reflect.DeepEqual(ka, kb) {
		*out = append(*out, FieldChange{Path: path + " (order)", Old: strings.Join(ka, ", "), New: strings.Join(kb, ", ")})
	}
}

// breakingReason says why a field change breaks consumers, or "".
func breakingReason(kind Kind, f *FieldChange) string {
	head, rest, _ := strings.Cut(f.Path, ".")
	removed := f.New == nil && f.Old != nil
	switch kind {
	case KindEntity:
		if head == "join_keys" {
			return "changes the entity's join keys: stored rows and entity tables no longer match"
		}
	case KindSource:
		switch {
		case head == "timestamp_field":
			return "changes the source's event time: point-in-time joins and watermarks change meaning"
		case head == "schema" && strings.HasSuffix(rest, ".type"):
			return "changes the type of a field of the source"
		}
	case KindFeatureView:
		switch {
		case head == "entities":
			return "changes the view's entities: its keys change"
		case head == "features" && strings.HasSuffix(rest, ".type"):
			return "changes a feature's type"
		case head == "features" && !strings.Contains(rest, ".") && removed:
			return "removes a feature"
		case head == "aggregations" && !strings.Contains(rest, ".") && removed:
			return "removes a feature"
		case head == "aggregations" && strings.Contains(rest, "."):
			return "changes what an aggregated feature computes"
		case head == "hop" && f.Old != nil && f.New != nil:
			return "changes the aggregation tile size"
		}
	case KindOnDemandView:
		switch {
		case head == "features" && strings.HasSuffix(rest, ".type"):
			return "changes a feature's type"
		case head == "features" && !strings.Contains(rest, ".") && removed:
			return "removes a feature"
		}
	case KindFeatureService:
		if head == "features" && removed {
			return "removes a feature from the service"
		}
	}
	return ""
}

// WriteText renders the plan for a terminal.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	from := "nothing applied yet"
	if p.FromVersion > 0 {
		from = fmt.Sprintf("registry version %d", p.FromVersion)
	}
	fmt.Fprintf(&b, "Plan for project %s, against %s:\n", p.Project, from)
	if !p.HasChanges() {
		fmt.Fprintf(&b, "\nNo changes: the registry matches the repository (%d objects).\n", p.Summary.Unchanged)
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("\n")
	for _, c := range p.Changes {
		mark := map[Action]string{ActionCreate: "+", ActionUpdate: "~", ActionDelete: "-"}[c.Action]
		if mark == "" {
			continue
		}
		fmt.Fprintf(&b, "  %s %s %s", mark, c.Kind, c.Name)
		if c.Reason != "" {
			fmt.Fprintf(&b, "   BREAKING: %s", c.Reason)
		}
		b.WriteString("\n")
		for _, f := range c.Fields {
			fmt.Fprintf(&b, "      %s", f.Path)
			switch {
			case f.Old == nil:
				fmt.Fprintf(&b, ": + %s", render(f.New))
			case f.New == nil:
				fmt.Fprintf(&b, ": - %s", render(f.Old))
			default:
				fmt.Fprintf(&b, ": %s → %s", render(f.Old), render(f.New))
			}
			if f.Breaking {
				fmt.Fprintf(&b, "   BREAKING: %s", f.Reason)
			}
			b.WriteString("\n")
		}
	}
	s := p.Summary
	fmt.Fprintf(&b, "\n%d to create, %d to update, %d to delete, %d unchanged", s.Create, s.Update, s.Delete, s.Unchanged)
	if s.Breaking > 0 {
		fmt.Fprintf(&b, "; %d breaking", s.Breaking)
		if p.ToVersion == 0 {
			b.WriteString(" (apply needs --allow-breaking)")
		}
	}
	b.WriteString(".\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func render(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "(none)"
	}
	b, err := canonicalJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
