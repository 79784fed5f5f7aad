package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
)

func testSource() *registry.Source {
	return &registry.Source{Name: "trips", Kind: registry.SourceKafka, TimestampField: "ts", Schema: []*registry.Field{
		{Name: "driver_id", Type: registry.TypeInt64},
		{Name: "rider_id", Type: registry.ValueType{Elem: registry.String}},
		{Name: "fare", Type: registry.ValueType{Elem: registry.Float64}},
		{Name: "ts", Type: registry.TypeTimestamp},
		{Name: "zone", Type: registry.ValueType{Elem: registry.Int32}},
		{Name: "tags", Type: registry.ValueType{Elem: registry.String, List: true}},
		{Name: "ok", Type: registry.ValueType{Elem: registry.Bool}},
		{Name: "blob", Type: registry.ValueType{Elem: registry.Bytes}},
		{Name: "w", Type: registry.ValueType{Elem: registry.Float32}},
	}}
}

func TestDecode(t *testing.T) {
	d, err := NewDecoder(testSource(), []string{"driver_id"})
	require.NoError(t, err)
	var ev streamlog.Event
	msg := ` { "driver_id": 7, "rider_id": "r\u00e9", "fare": 12.5e0, "ts": "2026-11-23T10:00:00.1234567+01:00",
	  "zone": -3, "tags": ["a", "b"], "ok": true, "blob": "AQI=", "w": 0.5 } `
	require.NoError(t, d.Decode([]byte(msg), &ev))
	at := time.Date(2026, 11, 23, 9, 0, 0, 123456000, time.UTC)
	require.Equal(t, []any{int64(7), "ré", 12.5, at, int32(-3), []any{"a", "b"}, true, []byte{1, 2}, float32(0.5)}, ev.Values)
	require.Equal(t, at, ev.Time)

	msg = `{"driver_id": 7, "rider_id": null, "fare": null, "ts": 1700000000123, "zone": null, "tags": [], "ok": false, "blob": null, "w": null}`
	require.NoError(t, d.Decode([]byte(msg), &ev))
	require.Equal(t, time.UnixMilli(1700000000123).UTC(), ev.Time)
	require.Equal(t, []any{int64(7), nil, nil, ev.Time, nil, []any{}, false, nil, nil}, ev.Values)
}

func TestDecodeErrors(t *testing.T) {
	d, err := NewDecoder(testSource(), []string{"driver_id"})
	require.NoError(t, err)
	const rest = `"rider_id": "r", "fare": 1, "ts": "2026-11-23T10:00:00Z", "zone": 1, "tags": [], "ok": true, "blob": "", "w": 1`
	for _, c := range []struct{ msg, want string }{
		{``, "not a JSON object"},
		{`[1]`, "not a JSON object"},
		{`{"driver_id": 1, ` + rest + `} x`, "unexpected data after the JSON object"},
		{`{"driver_id": "7", ` + rest + `}`, "field driver_id: want int64: want a number"},
		{`{"driver_id": 1.5, ` + rest + `}`, "field driver_id: want int64, got 1.5"},
		{`{"driver_id": 99999999999999999999, ` + rest + `}`, "field driver_id: 99999999999999999999 does not fit int64"},
		{`{"driver_id": null, ` + rest + `}`, "field driver_id: is null"},
		{`{` + rest + `}`, "field driver_id: is missing"},
		{`{"driver_id": 1, "extra": 2, ` + rest + `}`, `field extra: not a field of source trips`},
		{`{"driver_id": 1, "driver_id": 2, ` + rest + `}`, "field driver_id: appears twice"},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": "yesterday", "zone": 1, "tags": [], "ok": true, "blob": "", "w": 1}`, `field ts: "yesterday" is not an RFC 3339 time`},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": null, "zone": 1, "tags": [], "ok": true, "blob": "", "w": 1}`, "field ts: is null"},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": 1, "zone": 3000000000, "tags": [], "ok": true, "blob": "", "w": 1}`, "field zone: 3000000000 does not fit int32"},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": 1, "zone": 1, "tags": ["a", null], "ok": true, "blob": "", "w": 1}`, "field tags: element 1 is null; lists hold no nulls"},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": 1, "zone": 1, "tags": [], "ok": 1, "blob": "", "w": 1}`, "field ok: want true or false"},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": 1, "zone": 1, "tags": [], "ok": true, "blob": "!", "w": 1}`, "field blob: want base64 bytes"},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": 1, "zone": 1, "tags": [], "ok": true, "blob": "", "w": 1e40}`, "field w: 1e40 does not fit float32"},
		{`{"driver_id": 1, "rider_id": "r`, "field rider_id: unterminated string"},
		{`{"driver_id": 1, "rid`, "bad field name: unterminated string"},
		// Times every sink can hold: years 1900 through 9999.
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": -70000000000000, "zone": 1, "tags": [], "ok": true, "blob": "", "w": 1}`,
			"field ts: -70000000000000 epoch milliseconds: time year -249 ("},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": "0001-01-01T00:00:00Z", "zone": 1, "tags": [], "ok": true, "blob": "", "w": 1}`,
			"field ts: time 0001-01-01T00:00:00Z is out of range: times must be from 1900-01-01T00:00:00Z through 9999-12-31T23:59:59.999999Z"},
		{`{"driver_id": 1, "rider_id": "r", "fare": 1, "ts": 253402300800000, "zone": 1, "tags": [], "ok": true, "blob": "", "w": 1}`,
			"field ts: 253402300800000 epoch milliseconds: time year 10000 ("},
	} {
		var ev streamlog.Event
		err := d.Decode([]byte(c.msg), &ev)
		require.Error(t, err, c.msg)
		require.ErrorContains(t, err, c.want, c.msg)
		var de *DecodeError
		require.True(t, errors.As(err, &de))
	}
}

func TestNewDecoderChecksTheSchema(t *testing.T) {
	src := testSource()
	_, err := NewDecoder(src, []string{"nope"})
	require.ErrorContains(t, err, `source trips declares no field "nope"`)
	src.TimestampField = "fare"
	_, err = NewDecoder(src, nil)
	require.ErrorContains(t, err, `timestamp field "fare" is not a declared timestamp field`)
}

// FuzzDecode: decoding a Kafka message never panics; every error is a
// DecodeError naming a declared field or none; what decodes has every
// field, with its Go type, a key, and an event time in the valid range;
// and written back as JSON it decodes to the same event.
func FuzzDecode(f *testing.F) {
	d, err := NewDecoder(testSource(), []string{"driver_id"})
	if err != nil {
		f.Fatal(err)
	}
	const rest = `"rider_id": "r", "fare": 1, "zone": 1, "tags": [], "ok": true, "blob": "", "w": 1`
	for _, s := range []string{
		`{"driver_id": 7, "rider_id": "r", "fare": 12.5, "ts": "2026-11-23T10:00:00Z", "zone": 1, "tags": ["a"], "ok": true, "blob": "AQI=", "w": 0.5}`,
		`{"driver_id": 7, "rider_id": null, "fare": null, "ts": 1700000000123, "zone": null, "tags": [], "ok": false, "blob": null, "w": null}`,
		`{"driver_id": -0, "rider_id": "\ud83d\ude00\n", "fare": -1.5E-3, "ts": 0, "zone": 0, "tags": ["\"", "\\"], "ok": true, "blob": "", "w": 0}`,
		`{}`, `{"driver_id":`, `null`, `{"tags": [1, 2]}`,
		`{"driver_id": 1, "ts": "-0249-01-01T00:00:00Z", ` + rest + `}`,
		`{"driver_id": 1, "ts": "10000-01-01T00:00:00Z", ` + rest + `}`,
		`{"driver_id": 1, "ts": -7857734400000, ` + rest + `}`,
		`{"driver_id": 1, "ts": 253402300800000, ` + rest + `}`,
		`{"driver_id": 1, "ts": 1e300, ` + rest + `}`,
		`{"driver_id": 1, "ts": "9999-12-31T23:59:59.999999999-01:00", ` + rest + `}`,
		`{"driver_id": 1, "driver_id": 2, "ts": 0, ` + rest + `}`,
		`{"driver_id": 123456789012345678901234567890, "ts": 0, ` + rest + `}`,
		`{"driver_id": 1, "ts": 0, "rider_id": "r", "fare": 1e400, "zone": 2147483648, "tags": [], "ok": true, "blob": "", "w": 3.5e38}`,
		"{\"driver_id\": 1, \"ts\": 0, \"rider_id\": \"\xff\xfe\", \"fare\": 1, \"zone\": 1, \"tags\": [\"\xc0\"], \"ok\": true, \"blob\": \"\", \"w\": 1}",
		`{"driver_id": 1, "ts": 0, "tags": ` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `, "rider_id": "r", "fare": 1, "zone": 1, "ok": true, "blob": "", "w": 1}`,
		`{"driver_id": 1, "ts": 0, "extra": {"a": [1, {"b": 2}]}, ` + rest + `}`,
		`{"driver_id": 1, "ts": 0, "blob": "not base64!", "rider_id": "r", "fare": 1, "zone": 1, "tags": [], "ok": true, "w": 1}`,
	} {
		f.Add([]byte(s))
	}
	goTypes := map[registry.Scalar]string{registry.Int32: "int32", registry.Int64: "int64", registry.Float32: "float32",
		registry.Float64: "float64", registry.Bool: "bool", registry.String: "string", registry.Bytes: "[]uint8", registry.Timestamp: "time.Time"}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var ev streamlog.Event
		if err := d.Decode(msg, &ev); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DecodeError", err)
			}
			if _, declared := d.index[de.Field]; de.Field != "" && !declared && !strings.HasPrefix(de.Reason, "not a field of source ") {
				t.Fatalf("error names field %q, which is not declared: %v", de.Field, err)
			}
			return
		}
		// A message that decodes has every field, a time, and a key.
		if len(ev.Values) != len(d.Fields()) || ev.Values[0] == nil || ev.Values[3] == nil {
			t.Fatalf("decoded %v", ev.Values)
		}
		require.NoError(t, registry.CheckTime(ev.Time))
		require.Equal(t, ev.Time, ev.Values[3])
		obj := map[string]any{}
		for i, fd := range d.Fields() {
			v := ev.Values[i]
			obj[fd.Name] = v
			if v == nil {
				continue
			}
			if fd.Type.List {
				l, ok := v.([]any)
				require.True(t, ok, "field %s is %T", fd.Name, v)
				for _, e := range l {
					require.Equal(t, goTypes[fd.Type.Elem], fmt.Sprintf("%T", e), "field %s", fd.Name)
				}
				continue
			}
			require.Equal(t, goTypes[fd.Type.Elem], fmt.Sprintf("%T", v), "field %s", fd.Name)
		}
		out, err := json.Marshal(obj)
		require.NoError(t, err)
		var again streamlog.Event
		require.NoError(t, d.Decode(out, &again), "written back: %s", out)
		require.Equal(t, ev.Time, again.Time)
		require.Equal(t, fmt.Sprintf("%#v", ev.Values), fmt.Sprintf("%#v", again.Values), "written back: %s", out)
	})
}
