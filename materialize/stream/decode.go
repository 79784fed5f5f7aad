package stream

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
	"github.com/quiverdata/quiver/value"
)

// DecodeError says why a message was refused: which field, and what is
// wrong with it. It is the reason a dead letter carries.
type DecodeError struct {
	Field  string // empty when the message as a whole is wrong
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + e.Field + ": " + e.Reason
}

// Decoder turns one source's JSON messages into events. A message is one
// JSON object holding every declared schema field and nothing else;
// timestamps are RFC 3339 strings or epoch milliseconds within
// registry.MinTime and registry.MaxTime, bytes are base64
// strings, lists are arrays without nulls. Null is accepted except for the
// timestamp field and the join keys the source's views need. A Decoder is
// immutable and safe for concurrent use.
type Decoder struct {
	source   string
	fields   []*registry.Field
	index    map[string]int
	ts       int
	required []bool
}

// NewDecoder returns the decoder of src; required names further fields
// (the views' join keys, by source name) that must not be null.
func NewDecoder(src *registry.Source, required []string) (*Decoder, error) {
	d := &Decoder{source: src.Name, fields: src.Schema, index: map[string]int{}, ts: -1,
		required: make([]bool, len(src.Schema))}
	for i, f := range src.Schema {
		d.index[f.Name] = i
		if f.Name == src.TimestampField {
			d.ts = i
			d.required[i] = true
		}
	}
	if d.ts < 0 || d.fields[d.ts].Type != registry.TypeTimestamp {
		return nil, fmt.Errorf("source %s: timestamp field %q is not a declared timestamp field", src.Name, src.TimestampField)
	}
	for _, name := range required {
		i, ok := d.index[name]
		if !ok {
			return nil, fmt.Errorf("source %s declares no field %q", src.Name, name)
		}
		d.required[i] = true
	}
	return d, nil
}

// Fields returns the source's schema, the order of Event.Values.
func (d *Decoder) Fields() []*registry.Field { return d.fields }

// Decode reads one message into ev, reusing ev.Values. On error ev is
// unusable and the error is a *DecodeError.
func (d *Decoder) Decode(msg []byte, ev *streamlog.Event) error {
	if cap(ev.Values) < len(d.fields) {
		ev.Values = make([]any, len(d.fields))
	}
	ev.Values = ev.Values[:len(d.fields)]
	seen := make([]bool, len(d.fields))
	p := parser{b: msg}
	p.ws()
	if !p.eat('{') {
		return &DecodeError{Reason: "not a JSON object"}
	}
	p.ws()
	if !p.eat('}') {
		for {
			p.ws()
			key, err := p.str()
			if err != nil {
				return &DecodeError{Reason: "bad field name: " + err.Error()}
			}
			i, ok := d.index[key]
			if !ok {
				return &DecodeError{Field: key, Reason: fmt.Sprintf("not a field of source %s", d.source)}
			}
			if seen[i] {
				return &DecodeError{Field: key, Reason: "appears twice"}
			}
			seen[i] = true
			p.ws()
			if !p.eat(':') {
				return &DecodeError{Field: key, Reason: "expected ':' after the field name"}
			}
			p.ws()
			v, err := p.value(d.fields[i].Type)
			if err != nil {
				return &DecodeError{Field: key, Reason: err.Error()}
			}
			if v == nil && d.required[i] {
				return &DecodeError{Field: key, Reason: "is null"}
			}
			ev.Values[i] = v
			p.ws()
			if p.eat('}') {
				break
			}
			if !p.eat(',') {
				return &DecodeError{Field: key, Reason: "expected ',' or '}' after the value"}
			}
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return &DecodeError{Reason: "unexpected data after the JSON object"}
	}
	for i, ok := range seen {
		if !ok {
			return &DecodeError{Field: d.fields[i].Name, Reason: "is missing"}
		}
	}
	ev.Time = ev.Values[d.ts].(time.Time)
	return nil
}

// parser reads JSON values of declared types.
type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// str reads a JSON string.
func (p *parser) str() (string, error) {
	if !p.eat('"') {
		return "", fmt.Errorf("want a string")
	}
	start := p.i
	escaped := false
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			raw := p.b[start:p.i]
			p.i++
			if !escaped && utf8.Valid(raw) {
				return string(raw), nil
			}
			var s string
			if err := json.Unmarshal(p.b[start-1:p.i], &s); err != nil {
				return "", fmt.Errorf("bad string")
			}
			return s, nil
		case c == '\\':
			escaped = true
			p.i += 2
		case c < 0x20:
			return "", fmt.Errorf("control character in a string")
		default:
			p.i++
		}
	}
	return "", fmt.Errorf("unterminated string")
}

// number reads a JSON number's text; integer reports whether it has no
// fraction or exponent.
func (p *parser) number() (text string, integer bool, err error) {
	start := p.i
	integer = true
	p.eat('-')
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if n := digits(); n == 0 || n > 1 && p.b[p.i-n] == '0' {
		return "", false, fmt.Errorf("want a number")
	}
	if p.eat('.') {
		integer = false
		if digits() == 0 {
			return "", false, fmt.Errorf("bad number")
		}
	}
	if p.eat('e') || p.eat('E') {
		integer = false
		if !p.eat('+') {
			p.eat('-')
		}
		if digits() == 0 {
			return "", false, fmt.Errorf("bad number")
		}
	}
	return string(p.b[start:p.i]), integer, nil
}

// value reads a value of type t; nil for null.
func (p *parser) value(t registry.ValueType) (any, error) {
	if p.lit("null") {
		return nil, nil
	}
	if !t.List {
		return p.scalar(t.Elem)
	}
	if !p.eat('[') {
		return nil, fmt.Errorf("want a list of %s", t.Elem)
	}
	out := []any{}
	p.ws()
	if p.eat(']') {
		return out, nil
	}
	for {
		p.ws()
		if p.lit("null") {
			return nil, fmt.Errorf("element %d is null; lists hold no nulls", len(out))
		}
		v, err := p.scalar(t.Elem)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", len(out), err)
		}
		out = append(out, v)
		p.ws()
		if p.eat(']') {
			return out, nil
		}
		if !p.eat(',') {
			return nil, fmt.Errorf("expected ',' or ']' in the list")
		}
	}
}

func (p *parser) scalar(e registry.Scalar) (any, error) {
	switch e {
	case registry.Int32, registry.Int64:
		text, integer, err := p.number()
		if err != nil {
			return nil, fmt.Errorf("want %s: %w", e, err)
		}
		if !integer {
			return nil, fmt.Errorf("want %s, got %s", e, text)
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s does not fit %s", text, e)
		}
		return value.FromInt(e, n) // an int32 out of range is an error
	case registry.Float32, registry.Float64:
		text, _, err := p.number()
		if err != nil {
			return nil, fmt.Errorf("want %s: %w", e, err)
		}
		bits := 64
		if e == registry.Float32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(text, bits) // rounds once, to float32 for float32
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s does not fit %s", text, e)
		}
		return value.FromFloat(e, f)
	case registry.Bool:
		switch {
		case p.lit("true"):
			return true, nil
		case p.lit("false"):
			return false, nil
		}
		return nil, fmt.Errorf("want true or false")
	case registry.String:
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return s, nil
	case registry.Bytes:
		s, err := p.str()
		if err != nil {
			return nil, fmt.Errorf("want base64 bytes: %w", err)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("want base64 bytes: %v", err)
		}
		return b, nil
	case registry.Timestamp:
		if p.i < len(p.b) && p.b[p.i] == '"' {
			s, err := p.str()
			if err != nil {
				return nil, err
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an RFC 3339 time", s)
			}
			t = t.UTC().Truncate(time.Microsecond)
			if err := registry.CheckTime(t); err != nil {
				return nil, err
			}
			return t, nil
		}
		text, integer, err := p.number()
		if err != nil || !integer {
			return nil, fmt.Errorf("want an RFC 3339 string or epoch milliseconds")
		}
		ms, err := strconv.ParseInt(text, 10, 64)
		if err != nil || ms > math.MaxInt64/1000 || ms < math.MinInt64/1000 {
			return nil, fmt.Errorf("%s is out of range of epoch milliseconds", text)
		}
		t := time.UnixMilli(ms).UTC()
		if err := registry.CheckTime(t); err != nil {
			return nil, fmt.Errorf("%s epoch milliseconds: %w", text, err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("type %s cannot be decoded", e)
}
