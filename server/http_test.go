package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
)

// keyCounts counts the object keys of a valid JSON document twice: as
// its token stream holds them, and as a decoded value keeps them (where
// the last of a duplicate key wins).
func keyCounts(t *testing.T, data []byte) (tokens, kept int) {
	type frame struct{ object, wantKey bool }
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey && tok != json.Delim('}') {
			tokens++
			stack[n-1].wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
	var v any
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	var count func(any) int
	count = func(v any) int {
		n := 0
		switch x := v.(type) {
		case map[string]any:
			n += len(x)
			for _, e := range x {
				n += count(e)
			}
		case []any:
			for _, e := range x {
				n += count(e)
			}
		}
		return n
	}
	return tokens, count(v)
}

// FuzzCheckJSONKeys: the duplicate-key check of the HTTP bodies never
// panics; on a valid document it refuses exactly those in which some
// object holds a key twice (what decoding would drop), naming the key;
// and both request decoders refuse such a body.
func FuzzCheckJSONKeys(f *testing.F) {
	for _, s := range []string{
		`{"entities": {"driver_id": [1]}, "features": ["stats:rate"]}`,
		`{"entities": {"driver_id": [1], "driver_id": [2]}}`,
		`{"a": 1, "a": 1}`, `{"a": {"b": 1}, "c": {"b": 2}}`, `[{"a": 1}, {"a": 1, "a": 2}]`,
		`{"source": "s", "rows": [{"x": 1, "y": [{"z": 1, "z": 2}]}]}`,
		`{"\u0061": 1, "a": 2}`, `{"a\ud800": 1, "a\ufffd": 2}`, "{\"a\xff\": 1, \"a\xfe\": 2}",
		`{"": 1, "": 2}`, `{"a": 1e999, "b": -0, "c": 123456789012345678901234567890}`,
		strings.Repeat(`{"a":`, 500) + `1` + strings.Repeat(`}`, 500),
		strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001),
		strings.Repeat(`{"k": `, 100) + `{"x": 1, "x": 2}` + strings.Repeat(`}`, 100),
		`{"a": 1,}`, `{"a" 1}`, `{`, ``, `null`, `"x"`, `{} {}`, `{"a": 1} {"a": 1, "a": 2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := checkJSONKeys(data)
		if !json.Valid(data) {
			return // syntax errors are the decoder's to report
		}
		tokens, kept := keyCounts(t, data)
		if (tokens != kept) != (err != nil) {
			t.Fatalf("%d keys, %d kept: checkJSONKeys says %v", tokens, kept, err)
		}
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), " appears twice") {
			t.Fatalf("error does not say which key: %v", err)
		}
		if _, derr := DecodeOnlineFeaturesRequest(bytes.NewReader(data)); !errors.Is(derr, online.ErrInvalidRequest) || !strings.Contains(derr.Error(), err.Error()) {
			t.Fatalf("the lookup decoder took a duplicate key: %v", derr)
		}
		if _, derr := DecodePushRequest(bytes.NewReader(data)); !errors.Is(derr, stream.ErrInvalidPush) || !strings.Contains(derr.Error(), err.Error()) {
			t.Fatalf("the push decoder took a duplicate key: %v", derr)
		}
	})
}
