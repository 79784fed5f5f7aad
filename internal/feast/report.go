package feast

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Outcome says how a Feast object, or one of its parts, came across.
type Outcome int

// The outcomes, in the order a report lists them.
const (
	// Mapped: written to the Quiver repository with the same meaning.
	Mapped Outcome = iota
	// Changed: written, but a name, a type or a rule differs from Feast's.
	Changed
	// NotMapped: left out (or written commented out) because Quiver has no
	// equivalent.
	NotMapped
)

func (o Outcome) String() string {
	switch o {
	case Mapped:
		return "mapped"
	case Changed:
		return "changed meaning"
	case NotMapped:
		return "did not map"
	}
	return fmt.Sprintf("outcome %d", int(o))
}

// Entry is one line of a report, about one Feast object.
type Entry struct {
	Outcome Outcome
	Kind    string // the Feast kind: entity, data source, feature view …
	Name    string // the Feast object's name
	Msg     string
}

// Report is what an import did, object by object.
type Report struct {
	Project string // the Feast project
	Entries []Entry
}

// sort orders entries by outcome, kind and name, keeping the order of one
// object's entries.
func (r *Report) sort() {
	rank := map[string]int{kindProject: 0, kindFeatureTbls: 1, kindEntity: 2, kindSource: 3, kindView: 4,
		kindStreamView: 5, kindOnDemand: 6, kindService: 7}
	sort.SliceStable(r.Entries, func(i, j int) bool {
		a, b := r.Entries[i], r.Entries[j]
		if a.Outcome != b.Outcome {
			return a.Outcome < b.Outcome
		}
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		return a.Name < b.Name
	})
}

// Count returns the number of entries with outcome o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, e := range r.Entries {
		if e.Outcome == o {
			n++
		}
	}
	return n
}

// Write prints the report in three sections, one line per entry.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	for _, o := range []Outcome{Mapped, Changed, NotMapped} {
		fmt.Fprintf(&b, "\n%s%s (%d):\n", strings.ToUpper(o.String()[:1]), o.String()[1:], r.Count(o))
		for _, e := range r.Entries {
			if e.Outcome == o {
				fmt.Fprintf(&b, "  %s %s: %s\n", e.Kind, e.Name, e.Msg)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
