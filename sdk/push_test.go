package sdk

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
)

// TestPushRequest: Go values become one typed column each, with nulls.
func TestPushRequest(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	req, err := pushRequest("src", []map[string]any{
		{"i": 1, "f": float32(0.5), "mix": 1, "s": "a", "b": []byte{1}, "t": at, "emb": []float32{1, 2}, "tags": []any{"x"}, "none": nil},
		{"i": int64(2), "f": nil, "mix": 0.25, "s": nil, "b": nil, "t": nil, "emb": nil, "tags": []string{}, "none": nil},
	})
	require.NoError(t, err)
	want := &servingv1.PushRequest{Source: "src",
		Columns: map[string]*servingv1.Values{
			"i":    {Int64Values: []int64{1, 2}},
			"f":    {FloatValues: []float32{0.5, 0}},
			"mix":  {DoubleValues: []float64{1, 0.25}},
			"s":    {StringValues: []string{"a", ""}},
			"b":    {BytesValues: [][]byte{{1}, nil}},
			"t":    {TimestampValues: []int64{at.UnixMicro(), 0}},
			"emb":  {ListValues: []*servingv1.Values{{FloatValues: []float32{1, 2}}, {}}},
			"tags": {ListValues: []*servingv1.Values{{StringValues: []string{"x"}}, {StringValues: []string{}}}},
			"none": {},
		},
		Nulls: map[string]*servingv1.NullMask{
			"f": {Null: []bool{false, true}}, "s": {Null: []bool{false, true}}, "b": {Null: []bool{false, true}},
			"t": {Null: []bool{false, true}}, "emb": {Null: []bool{false, true}}, "none": {Null: []bool{true, true}},
		},
	}
	require.True(t, proto.Equal(want, req), "got %v", req)

	for _, tc := range []struct {
		rows []map[string]any
		want string
	}{
		{[]map[string]any{{"x": struct{}{}}}, "push src: column x: row 0: struct {} is not a push value"},
		{[]map[string]any{{"x": true}, {"x": 1}}, "push src: column x: row 0 is bool, row 1 is int"},
		{[]map[string]any{{"x": []any{1, nil}}}, "push src: column x: row 0: list element 1 is nil; lists hold no nulls"},
		{[]map[string]any{{"x": [][]float32{{1}}}}, "push src: column x: row 0: a list of lists is not a push value"},
		{[]map[string]any{{"x": uint64(math.MaxUint64)}}, "push src: column x: row 0: 18446744073709551615 does not fit int64"},
		{[]map[string]any{{"x": 1}, {}}, "push src: row 1 has no x (give nil for null)"},
	} {
		_, err := pushRequest("src", tc.rows)
		require.EqualError(t, err, tc.want)
	}
}
