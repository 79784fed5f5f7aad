package registry

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder turns yaml nodes into Go values strictly: every problem is
// recorded with its position and field path, unknown keys included, and
// decoding goes on so that one run reports all of them.
type decoder struct {
	file   string
	errs   ErrorList
	fields map[string]Position
	// env, when set, interpolates ${VAR} in scalars (quiver.yaml only).
	env        func(string) (string, bool)
	unresolved []Unresolved
}

// scalarParser is implemented by types that parse themselves from a YAML
// scalar with their own error messages (value types, durations).
type scalarParser = encoding.TextUnmarshaler

var (
	metaType          = reflect.TypeFor[Meta]()
	scalarParserType  = reflect.TypeFor[scalarParser]()
	maxDecodeDepth    = 32
	maxAliasExpansion = 10000
)

func newDecoder(file string) *decoder {
	return &decoder{file: file, fields: make(map[string]Position)}
}

func (d *decoder) pos(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Field: path, Msg: messagef(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(Clip(n.Value))
	}
	return "something else"
}

// decode decodes n into v (addressable), recording problems under path.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value, depth int) {
	if depth > maxDecodeDepth {
		d.errorf(n, path, "nesting is too deep")
		return
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n, path, "unknown alias")
			return
		}
		n = n.Alias
		depth++
		if depth > maxDecodeDepth {
			d.errorf(n, path, "aliases nest too deep")
			return
		}
	}
	if v.CanAddr() && v.Addr().Type().Implements(scalarParserType) {
		s, ok := d.scalar(n, path, "a value")
		if !ok || s == "" {
			return
		}
		if err := v.Addr().Interface().(scalarParser).UnmarshalText([]byte(s)); err != nil {
			d.errorf(n, path, "%s", err.Error())
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			if v.Type().Elem().Kind() != reflect.Struct {
				return // an optional scalar left unset
			}
			// An empty list item: report it, and decode an empty object so
			// that later checks never meet a nil.
			v.Set(reflect.New(v.Type().Elem()))
			d.decodeStruct(n, path, v.Elem(), depth+1)
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, path, v.Elem(), depth+1)
	case reflect.Struct:
		d.decodeStruct(n, path, v, depth)
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.fields[p] = d.pos(item)
			d.decode(item, p, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a mapping of names to values, got %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			key, ok := d.scalar(kn, path, "a key")
			if !ok {
				continue
			}
			p := join(path, key)
			d.fields[p] = d.pos(kn)
			if m.MapIndex(reflect.ValueOf(key)).IsValid() {
				d.errorf(kn, p, "duplicate key %q", key)
				continue
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(vn, p, ev, depth+1)
			m.SetMapIndex(reflect.ValueOf(key), ev)
		}
		v.Set(m)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok || s == "" {
			return
		}
		switch s {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.errorf(n, path, "expected true or false, got %q", s)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, ok := d.scalar(n, path, "a whole number")
		if !ok || s == "" {
			return
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(i) {
			d.errorf(n, path, "expected a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	default:
		d.errorf(n, path, "cannot decode into %s", v.Type())
	}
}

// scalar returns the text of a scalar node, interpolated when the decoder
// has an environment. A null node is the empty string.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, got %s", want, kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	if d.env == nil {
		return n.Value, true
	}
	s, missing, err := interpolate(n.Value, d.env)
	if err != nil {
		d.errorf(n, path, "%s", err.Error())
		return "", false
	}
	for _, name := range missing {
		d.unresolved = append(d.unresolved, Unresolved{Field: path, Var: name, Pos: d.pos(n)})
	}
	if len(missing) > 0 {
		return "", true
	}
	return s, true
}

type structField struct {
	name  string
	index int
}

func yamlFields(t reflect.Type) []structField {
	var out []structField
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		out = append(out, structField{name: tag, index: i})
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value, depth int) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Type == metaType {
			v.Field(i).Set(reflect.ValueOf(Meta{File: d.file, Path: path, Line: n.Line, Column: n.Column, fields: d.fields}))
		}
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			d.errorf(n, path, "is empty; expected a mapping with keys %s", keyList(yamlFields(t)))
			return
		}
		d.errorf(n, path, "expected a mapping with keys %s, got %s", keyList(yamlFields(t)), kindName(n))
		return
	}
	fields := yamlFields(t)
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			d.errorf(kn, path, "expected a key, got %s", kindName(kn))
			continue
		}
		key := kn.Value
		p := join(path, key)
		idx := -1
		for _, f := range fields {
			if f.name == key {
				idx = f.index
			}
		}
		if idx < 0 {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			if hint := didYouMean(key, names); hint != "" {
				d.errorf(kn, p, "unknown key%s", hint)
			} else {
				d.errorf(kn, p, "unknown key (valid keys: %s)", keyList(fields))
			}
			continue
		}
		if seen[key] {
			d.errorf(kn, p, "duplicate key %q", key)
			continue
		}
		seen[key] = true
		d.fields[p] = d.pos(kn)
		d.decode(vn, p, v.Field(idx), depth+1)
	}
}

func keyList(fields []structField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// parseDocuments parses data as YAML documents and returns their root nodes,
// recording a syntax error with its line.
func (d *decoder) parseDocuments(data []byte) []*yaml.Node {
	docs, err := yamlDocuments(data)
	if err != nil {
		d.errs = append(d.errs, yamlSyntaxError(d.file, data, err))
	}
	return docs
}

// yamlDocuments parses data up to its first syntax error, returning the
// root nodes of the documents before it and the error.
func yamlDocuments(data []byte) ([]*yaml.Node, error) {
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		if len(doc.Content) == 0 {
			continue
		}
		if countNodes(&doc, 0) > maxAliasExpansion*10 {
			return docs, tooLargeError{line: doc.Line, column: doc.Column}
		}
		docs = append(docs, doc.Content[0])
	}
}

// tooLargeError is a document whose aliases expand past
// maxAliasExpansion*10 nodes.
type tooLargeError struct{ line, column int }

func (tooLargeError) Error() string { return "document is too large once aliases are expanded" }

// countNodes counts nodes with aliases expanded, stopping early past a bound
// so that alias bombs are refused cheaply.
func countNodes(n *yaml.Node, depth int) int {
	if depth > maxDecodeDepth {
		return maxAliasExpansion * 100
	}
	total := 1
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return total + countNodes(n.Alias, depth+1)
	}
	for _, c := range n.Content {
		total += countNodes(c, depth+1)
		if total > maxAliasExpansion*10 {
			return total
		}
	}
	return total
}

// yamlSyntaxError turns a yaml.v3 error ("yaml: line 3: could not find
// expected ':'") into an Error at the line of the problem.
//
// The line yaml.v3 prints is not that line: it is the zero-based line where
// the enclosing construct starts (a mapping that began on line 2 is
// reported as line 1, whatever line the bad token is on), and the parser's
// own marks are not exported. The problem's line is found instead as the
// first line at which the text, cut after that line, fails with the same
// error: before the problem every prefix parses (or fails differently, at
// its cut), and from the problem's line on the parser meets the same bad
// token in the same state. A binary search keeps that to a few parses.
func yamlSyntaxError(file string, data []byte, err error) *Error {
	var big tooLargeError
	if errors.As(err, &big) {
		return &Error{Pos: Position{File: file, Line: big.line, Column: big.column}, Msg: err.Error()}
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if _, perr := strconv.Atoi(rest[:i]); perr == nil {
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &Error{Pos: Position{File: file, Line: problemLine(data, err.Error())}, Msg: "invalid YAML: " + msg}
}

// problemLine returns the first line (1-based) such that data cut after it
// fails to parse with the error text want, or 0 when none does.
func problemLine(data []byte, want string) int {
	// ends[i] is the offset just past line i+1.
	var ends []int
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		ends = append(ends, len(data))
	}
	fails := func(line int) bool {
		_, err := yamlDocuments(data[:ends[line-1]])
		return err != nil && err.Error() == want
	}
	// The whole text fails with want; find the first line where that holds,
	// taking it as false before the problem and true from it on.
	lo, hi := 0, len(ends) // fails(lo) is false (no text), fails(hi) true
	if hi == 0 || !fails(hi) {
		return 0
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

func reflectValue(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }
