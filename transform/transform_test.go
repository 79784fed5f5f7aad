package transform

import (
	"errors"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/cel-go/common/types/ref"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

const repo = `
entities: [{name: driver, join_keys: [{name: driver_id, type: int64}]}]
sources: [{name: s, kind: parquet, path: s.parquet, timestamp_field: ts}]
feature_views:
  - name: v
    entities: [driver]
    source: s
    features:
      - {name: i32, type: int32}
      - {name: i64, type: int64}
      - {name: f32, type: float32}
      - {name: f64, type: float64}
      - {name: b, type: bool}
      - {name: s, type: string}
      - {name: raw, type: bytes}
      - {name: at, type: timestamp}
      - {name: emb, type: list<float32>}
      - {name: ids, type: list<int64>}
      - {name: tags, type: list<string>}
      - {name: unused, type: float64}
on_demand_feature_views:
  - name: od
    inputs: [v]
    request:
      - {name: surge, type: float64}
      - {name: n, type: int64}
      - {name: now, type: timestamp}
      - {name: label, type: string}
    features:
      - {name: i32_out, type: int32, expr: "int(v.i32) * 2"}
      - {name: i64_out, type: int64, expr: "v.i64 + request.n"}
      - {name: f32_out, type: float32, expr: "v.f32 * 0.5"}
      - {name: f64_out, type: float64, expr: "v.f64 * request.surge"}
      - {name: b_out, type: bool, expr: "!v.b"}
      - {name: s_out, type: string, expr: "v.s + '/' + request.label"}
      - {name: raw_out, type: bytes, expr: "v.raw + b'!'"}
      - {name: age_s, type: int64, expr: "(request.now - v.at).getSeconds()"}
      - {name: at_out, type: timestamp, expr: "v.at + duration('1h')"}
      - {name: emb_sum, type: float64, expr: "v.emb.size() == 0 ? 0.0 : v.emb[0] + v.emb[v.emb.size() - 1]"}
      - {name: emb_scaled, type: list<float32>, expr: "v.emb.map(x, x * 2.0)"}
      - {name: ids_out, type: list<int64>, expr: "v.ids.filter(x, x > 1)"}
      - {name: has_tag, type: bool, expr: "'vip' in v.tags"}
      - {name: f64_or, type: float64, expr: "has(v.f64) ? v.f64 : -1.0"}
      - {name: f64_opt, type: float64, expr: "v.?f64.orValue(-2.0)"}
      - {name: div, type: int64, expr: "v.i64 / request.n"}
      - {name: narrow, type: int32, expr: "v.i64 * 1000000000"}
`

func compileRepo(t *testing.T) *View {
	t.Helper()
	defs, errs := registry.ParseDefinitions("p", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(repo)})
	require.NoError(t, errs.Err())
	set, err := Compile(defs)
	require.NoError(t, err)
	v := set.View("od")
	require.NotNil(t, v)
	return v
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// row is one row of inputs (by feature name) and request fields.
type row struct {
	in  map[string]any
	req map[string]any
}

func fullRow() row {
	return row{
		in: map[string]any{
			"i32": int32(21), "i64": int64(40), "f32": float32(3), "f64": 1.5, "b": true, "s": "a",
			"raw": []byte{1, 2}, "at": t0, "emb": []float32{1, 2, 4}, "ids": []int64{1, 2, 3}, "tags": []string{"x", "vip"},
		},
		req: map[string]any{"surge": 2.0, "n": int64(2), "now": t0.Add(90 * time.Second), "label": "z"},
	}
}

func setRow(t *testing.T, e *Evaluator, r row) {
	t.Helper()
	for i, in := range e.view.Inputs {
		require.NoError(t, e.SetInput(i, r.in[in.Feature]))
	}
	for j, f := range e.view.Request {
		require.NoError(t, e.SetRequest(j, r.req[f.Name]))
	}
}

func evalAll(t *testing.T, v *View, r row) map[string]Result {
	e := v.NewEvaluator()
	setRow(t, e, r)
	out := map[string]Result{}
	for i, f := range v.Features {
		out[f.Name] = e.Eval(i)
	}
	return out
}

func TestInputsAreWhatTheExpressionsRead(t *testing.T) {
	v := compileRepo(t)
	var refs []string
	for _, in := range v.Inputs {
		refs = append(refs, in.Ref())
	}
	require.Equal(t, []string{"v:i32", "v:i64", "v:f32", "v:f64", "v:b", "v:s", "v:raw", "v:at", "v:emb", "v:ids", "v:tags"}, refs)
}

func TestEveryType(t *testing.T) {
	got := evalAll(t, compileRepo(t), fullRow())
	want := map[string]any{
		"i32_out": int32(42), "i64_out": int64(42), "f32_out": float32(1.5), "f64_out": 3.0, "b_out": false,
		"s_out": "a/z", "raw_out": []byte{1, 2, '!'}, "age_s": int64(90), "at_out": t0.Add(time.Hour),
		"emb_sum": 5.0, "emb_scaled": []float32{2, 4, 8}, "ids_out": []int64{2, 3}, "has_tag": true,
		"f64_or": 1.5, "f64_opt": 1.5, "div": int64(20),
	}
	for name, w := range want {
		require.NoError(t, got[name].Err, name)
		require.Zero(t, got[name].Null, name)
		require.Equal(t, w, got[name].Value, name)
	}
	// 40e9 does not fit an int32: a runtime failure, not a wrong value.
	require.Error(t, got["narrow"].Err)
	require.Contains(t, got["narrow"].Err.Error(), "does not fit int32")
	require.Nil(t, got["narrow"].Value)
}

func TestNullInputs(t *testing.T) {
	v := compileRepo(t)
	e := v.NewEvaluator()
	setRow(t, e, fullRow())
	for i, in := range v.Inputs {
		if in.Feature == "f64" {
			e.SetInputNull(i, 3)
		}
	}
	got := map[string]Result{}
	for i, f := range v.Features {
		got[f.Name] = e.Eval(i)
	}
	// Read directly: null with the input's code.
	require.Equal(t, Result{Null: 3}, got["f64_out"])
	// Handled with has() or optional syntax: a value.
	require.Equal(t, Result{Value: -1.0}, got["f64_or"])
	require.Equal(t, Result{Value: -2.0}, got["f64_opt"])
	// Features that do not read it are unaffected.
	require.Equal(t, Result{Value: int64(42)}, got["i64_out"])
}

func TestRuntimeErrors(t *testing.T) {
	r := fullRow()
	r.req["n"] = int64(0)
	got := evalAll(t, compileRepo(t), r)
	require.Nil(t, got["div"].Value)
	require.Zero(t, got["div"].Null)
	require.ErrorContains(t, got["div"].Err, "od:div")
	require.ErrorContains(t, got["div"].Err, "division by zero")
	require.Equal(t, int64(40), got["i64_out"].Value) // others still computed
}

func TestRequestValuesAreChecked(t *testing.T) {
	v := compileRepo(t)
	e := v.NewEvaluator()
	require.ErrorContains(t, e.SetRequest(1, "x"), "is not a int64")
	require.ErrorContains(t, e.SetRequest(1, 1.5), "is not a int64")
	require.NoError(t, e.SetRequest(1, 3.0)) // JSON numbers arrive as float64
	require.NoError(t, e.SetRequest(0, 2))   // an integer is an exact double
	require.ErrorContains(t, e.SetRequest(2, "yesterday"), "RFC 3339")
	require.NoError(t, e.SetRequest(2, "2026-03-01T12:00:00Z"))
	require.ErrorContains(t, e.SetInput(0, int64(1)<<40), "does not fit int32")
}

// The Arrow path gives the same values as the row path.
func TestBatchEqualsRows(t *testing.T) {
	v := compileRepo(t)
	rows := []row{fullRow(), fullRow(), fullRow()}
	rows[1].in["f64"] = nil
	rows[1].in["emb"] = []float32{}
	rows[2].req["n"] = int64(0)
	rows[2].in["s"] = "bb"
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	build := func(typ registry.ValueType, vals []any) arrow.Array {
		b := array.NewBuilder(mem, value.ArrowType(typ))
		defer b.Release()
		for _, x := range vals {
			if x != nil {
				x, _ = FromCEL(typ, mustCEL(t, typ, x))
			}
			value.AppendArrow(b, x)
		}
		return b.NewArray()
	}
	var inputs, request []arrow.Array
	for _, in := range v.Inputs {
		var vals []any
		for _, r := range rows {
			vals = append(vals, r.in[in.Feature])
		}
		inputs = append(inputs, build(in.Type, vals))
	}
	for _, f := range v.Request {
		var vals []any
		for _, r := range rows {
			vals = append(vals, r.req[f.Name])
		}
		request = append(request, build(f.Type, vals))
	}
	res, err := v.NewEvaluator().EvalBatch(mem, len(rows), inputs, request)
	require.NoError(t, err)
	for _, a := range append(inputs, request...) {
		a.Release()
	}
	require.Equal(t, 4, res.Errors) // narrow ×3, div on row 2
	for i, r := range rows {
		want := evalAll(t, v, r)
		for f, feat := range v.Features {
			col := res.Columns[f]
			if want[feat.Name].Value == nil {
				require.True(t, col.IsNull(i), "%s row %d", feat.Name, i)
				continue
			}
			cell, err := value.FromArrow(col, i)
			require.NoError(t, err)
			got, err := FromCEL(feat.Type, mustCEL(t, feat.Type, cell))
			require.NoError(t, err)
			require.Equal(t, want[feat.Name].Value, got, "%s row %d", feat.Name, i)
		}
	}
	for _, c := range res.Columns {
		c.Release()
	}
}

func mustCEL(t *testing.T, typ registry.ValueType, v any) ref.Val {
	t.Helper()
	c, err := ToCEL(typ, v)
	require.NoError(t, err)
	return c
}

func TestCacheCompilesOncePerVersion(t *testing.T) {
	defs, errs := registry.ParseDefinitions("p", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(repo)})
	require.NoError(t, errs.Err())
	var c Cache
	a, err := c.Get(defs)
	require.NoError(t, err)
	b, err := c.Get(defs)
	require.NoError(t, err)
	require.Same(t, a, b)
	defs2, _ := registry.ParseDefinitions("p", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(repo)})
	c2, err := c.Get(defs2)
	require.NoError(t, err)
	require.NotSame(t, a, c2)
	require.False(t, errors.Is(err, errNullResult))
}

// TestCacheKeepsTwoLiveVersions: while requests with two registry
// versions alternate (a reload under way), each version is compiled once.
func TestCacheKeepsTwoLiveVersions(t *testing.T) {
	parse := func() *registry.Definitions {
		defs, errs := registry.ParseDefinitions("p", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(repo)})
		require.NoError(t, errs.Err())
		return defs
	}
	old, cur := parse(), parse()
	var c Cache
	sets := map[*registry.Definitions]*Set{}
	for range 10 {
		for _, defs := range []*registry.Definitions{old, cur} {
			s, err := c.Get(defs)
			require.NoError(t, err)
			if prev, ok := sets[defs]; ok {
				require.Same(t, prev, s)
			}
			sets[defs] = s
		}
	}
	require.EqualValues(t, 2, c.Compiles(), "one compilation per version, not one per request")
}

// TestBatchRefusesUnsupportedColumns: an input column of a type the
// Arrow conversion does not take is an error naming the row and input.
func TestBatchRefusesUnsupportedColumns(t *testing.T) {
	v := compileRepo(t)
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	var inputs, request []arrow.Array
	for range v.Inputs {
		b := array.NewUint64Builder(mem)
		b.Append(1)
		inputs = append(inputs, b.NewArray())
		b.Release()
	}
	for _, f := range v.Request {
		b := array.NewBuilder(mem, value.ArrowType(f.Type))
		b.AppendNull()
		request = append(request, b.NewArray())
		b.Release()
	}
	_, err := v.NewEvaluator().EvalBatch(mem, 1, inputs, request)
	require.EqualError(t, err, "row 0: input "+v.Inputs[0].View+":"+v.Inputs[0].Feature+": arrow type uint64 is not supported")
	for _, a := range append(inputs, request...) {
		a.Release()
	}
}
