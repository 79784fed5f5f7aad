package registry

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/quiverdata/quiver/internal/text"
)

// Sentinel errors returned by the store and the model.
var (
	// ErrNoSnapshot is returned when the registry holds no applied version.
	ErrNoSnapshot = errors.New("quiver: registry has no applied version (run quiver apply)")
	// ErrVersionNotFound is returned for a version the registry does not hold.
	ErrVersionNotFound = errors.New("quiver: registry version not found")
	// ErrVersionExists is returned by Backend.Create when the version is taken.
	ErrVersionExists = errors.New("quiver: registry version already exists")
	// ErrBreaking is returned by Apply when the plan has breaking changes and
	// they were not allowed.
	ErrBreaking = errors.New("quiver: plan has breaking changes (review them, then apply with --allow-breaking)")
	// ErrNotFound is returned when a named object does not exist.
	ErrNotFound = errors.New("quiver: not found")
)

// Position is a place in a repository file. Line and Column are 1-based; a
// zero Line means the whole file.
type Position struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

func (p Position) String() string {
	switch {
	case p.File == "":
		return ""
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Error is one problem in a feature repository: where it is, which field,
// and what is wrong (with what would be right, where that can be said).
type Error struct {
	Pos   Position
	Field string // field path within the file, e.g. feature_views[2].ttl
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(ClipTo(e.Field, maxFieldBytes))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one load, sorted by position.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return fmt.Sprintf("%d problems:\n%s", len(l), strings.Join(lines, "\n"))
}

// Err returns the list as an error, or nil when it is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	return l
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// didYouMean returns ` (did you mean "x"?)` for the closest candidate within
// a small edit distance of s, or "".
func didYouMean(s string, candidates []string) string { return text.DidYouMean(s, candidates) }

// withoutShadowed drops the checks in later that concern a field already
// reported in first (the same field, one inside it, or one containing it):
// a value that failed to decode would otherwise also be reported missing.
func withoutShadowed(first, later ErrorList) ErrorList {
	out := first
	for _, e := range later {
		shadowed := false
		for _, f := range first {
			if e.Pos.File == f.Pos.File && related(e.Field, f.Field) {
				shadowed = true
				break
			}
		}
		if !shadowed {
			out = append(out, e)
		}
	}
	return out
}

func related(a, b string) bool {
	inside := func(x, y string) bool { // x is y or below it
		return x == y || strings.HasPrefix(x, y+".") || strings.HasPrefix(x, y+"[")
	}
	return a != "" && b != "" && (inside(a, b) || inside(b, a))
}

// Error messages quote what the user wrote, and what the user wrote may be
// megabytes long (a hostile name, a pasted blob): messages cut it.
const (
	// maxQuotedBytes is the longest value a message quotes in full: any
	// valid name (at most 128 characters) is shown whole.
	maxQuotedBytes = text.MaxQuoted
	// maxFieldBytes is the longest field path a message shows in full.
	maxFieldBytes = 200
	// maxMessageBytes bounds any other text put into a message.
	maxMessageBytes = 4096
)

// Clip returns s as it may appear in an error message: unchanged when it is
// short, else its first bytes (cut on a character boundary) and its length,
// e.g. "abcabcabc…(10485760 bytes)".
func Clip(s string) string { return text.Clip(s) }

// ClipTo is Clip for values that are legitimately longer (a file path may
// be up to 4096 bytes): s unchanged up to max bytes, else cut the same way.
func ClipTo(s string, max int) string { return text.ClipTo(s, max) }

// messagef is fmt.Sprintf for error messages: every string argument is
// clipped, a quoted one (%q, a value the user wrote) to maxQuotedBytes, any
// other to maxMessageBytes.
func messagef(format string, args ...any) string {
	clipped := make([]any, len(args))
	for i, a := range args {
		if s, ok := a.(string); ok {
			a = clippedString(s)
		}
		clipped[i] = a
	}
	return fmt.Sprintf(format, clipped...)
}

// clippedString formats as a string does, clipped.
type clippedString string

func (c clippedString) Format(f fmt.State, verb rune) {
	s := string(c)
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(Clip(s))) // fmt.State's writes do not fail
		return
	}
	_, _ = io.WriteString(f, ClipTo(s, maxMessageBytes))
}
