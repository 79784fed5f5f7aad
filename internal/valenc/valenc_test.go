package valenc

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

func TestRead(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	var b []byte
	b = binary.AppendVarint(b, -7)
	b = binary.AppendVarint(b, at.UnixMicro())
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(1.5))
	b = append(b, 1)
	b = append(binary.AppendUvarint(b, 2), "hi"...)
	b = binary.AppendUvarint(b, 2) // a list of two float64
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(0.25))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(-2))
	for _, want := range []struct {
		typ registry.ValueType
		v   any
	}{
		{registry.ValueType{Elem: registry.Int32}, int32(-7)},
		{registry.ValueType{Elem: registry.Timestamp}, at},
		{registry.ValueType{Elem: registry.Float32}, float32(1.5)},
		{registry.ValueType{Elem: registry.Bool}, true},
		{registry.ValueType{Elem: registry.String}, "hi"},
		{registry.ValueType{Elem: registry.Float64, List: true}, []float64{0.25, -2}},
	} {
		var v any
		var err error
		v, b, err = Read(b, want.typ)
		require.NoError(t, err, want.typ.String())
		require.Equal(t, want.v, v)
	}
	require.Empty(t, b)

	for _, bad := range []struct {
		b   []byte
		typ registry.ValueType
	}{
		{binary.AppendVarint(nil, math.MaxInt32+1), registry.ValueType{Elem: registry.Int32}},
		{[]byte{1, 2}, registry.ValueType{Elem: registry.Float32}},
		{[]byte{2}, registry.ValueType{Elem: registry.Bool}},
		{[]byte{5, 'a'}, registry.ValueType{Elem: registry.Bytes}},
		{[]byte{200}, registry.ValueType{Elem: registry.Int64, List: true}},
		{nil, registry.ValueType{Elem: registry.Int64}},
	} {
		_, _, err := Read(bad.b, bad.typ)
		require.Error(t, err, "%v as %s", bad.b, bad.typ)
	}
}
