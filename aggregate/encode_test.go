package aggregate

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fuzzFunctions cover every slot kind and value encoding in few slots.
var fuzzFunctions = []string{"count", "sum fare", "sum meters", "min pickup", "max tip", "last city", "last emb", "last seats", "last shared", "last raw"}

func sampleState(t testing.TB, s *Spec, seed uint64, n int) *State {
	rng := rand.New(rand.NewPCG(seed, 1))
	var st State
	for i, e := range randomEvents(rng, n, t0, 3*time.Hour, s.Hop()) {
		s.Apply(&st, Event{Time: time.UnixMicro(e.us), Values: e.vals, Partition: int32(i % 3), Offset: int64(i)})
	}
	s.Prune(&st)
	return &st
}

func TestEncodeLayout(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m"}, map[string][]string{"v": {"1h"}}, []string{"count", "sum fare", "last city"})
	s := testSpec(t, defs, "v")
	var st State
	s.Apply(&st, event(t0.Add(90*time.Second), 9, map[int]any{colFare: 2.5, colCity: "ab"}))
	s.Apply(&st, event(t0.Add(-time.Minute), -1, nil))
	row := s.Encode(nil, &st)

	want := []byte{2}
	want = binary.BigEndian.AppendUint64(want, uint64(t0.Add(90*time.Second).UnixMicro())^(1<<63))
	want = binary.LittleEndian.AppendUint32(want, s.Fingerprint())
	want = append(want, 1, 0, 18) // one partition: 0 → offset 9 (zigzag)
	k := t0.Add(-time.Minute).Unix() / 60
	want = append(want, 2)                               // two tiles
	want = binary.AppendVarint(want, k)                  // the first index
	want = append(want, 1, 0, 0)                         // count 1; sum and last empty
	want = append(want, 2)                               // the next tile, two tiles later
	want = append(want, 1, 1, 0, 0, 0, 0, 0, 0, 4, 0x40) // count 1; sum 1 × 2.5
	want = append(want, 1)                               // last: one value
	want = binary.AppendUvarint(want, uint64(30*time.Second/time.Microsecond))
	want = append(want, 2, 'a', 'b')
	require.Equal(t, want, row)
}

func TestDecodeErrors(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m", "w": "1m"}, map[string][]string{"v": {"1h"}, "w": {"2h"}}, fuzzFunctions)
	s, other := testSpec(t, defs, "v"), testSpec(t, defs, "w")
	row := s.Encode(nil, sampleState(t, s, 1, 50))

	_, err := other.Decode(row)
	require.ErrorIs(t, err, ErrSpecChanged)
	_, err = other.EvaluateEncoded(row, t0, make([]any, len(other.aggs)))
	require.ErrorIs(t, err, ErrSpecChanged)

	plain := append([]byte{1}, row[1:13]...)
	_, err = s.Decode(plain)
	require.ErrorIs(t, err, ErrSpecChanged, "a plain row where tiles are expected")

	for name, bad := range map[string][]byte{
		"short":     row[:12],
		"format":    append([]byte{3}, row[1:]...),
		"truncated": row[:len(row)-1],
		"trailing":  append(append([]byte{}, row...), 0),
	} {
		_, err := s.Decode(bad)
		require.ErrorIs(t, err, ErrCorrupt, name)
		_, err = s.EvaluateEncoded(bad, t0, make([]any, len(s.aggs)))
		require.ErrorIs(t, err, ErrCorrupt, name)
	}

	var empty State
	st, err := s.Decode(s.Encode(nil, &empty))
	require.NoError(t, err)
	_, ok := st.MaxEventTime()
	require.False(t, ok)
	out := make([]any, len(s.aggs))
	at, err := s.EvaluateEncoded(s.Encode(nil, &empty), t0, out)
	require.NoError(t, err)
	require.True(t, at.IsZero())
	require.Equal(t, int64(0), out[0])
}

// FuzzDecode: decoding arbitrary bytes never panics, and whatever decodes
// evaluates alike decoded and encoded, and encodes back stably.
func FuzzDecode(f *testing.F) {
	defs := testDefs(f, map[string]string{"v": "1m"}, map[string][]string{"v": {"1m", "1h"}}, fuzzFunctions)
	s := testSpec(f, defs, "v")
	for i, n := range []int{0, 1, 5, 40} {
		row := s.Encode(nil, sampleState(f, s, uint64(i), n))
		f.Add(row)
		f.Add(row[:len(row)/2])
	}
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		out := make([]any, len(s.aggs))
		at := t0.Add(time.Duration(len(data)) * time.Minute)
		_, encErr := s.EvaluateEncoded(data, at, out)
		st, err := s.Decode(data)
		if err != nil {
			require.Error(t, encErr, "Decode failed with %v", err)
			return
		}
		require.NoError(t, encErr)
		got := make([]any, len(s.aggs))
		s.Evaluate(st, at, got)
		require.Equal(t, fmt.Sprint(out), fmt.Sprint(got))
		row := s.Encode(nil, st)
		again, err := s.Decode(row)
		require.NoError(t, err)
		require.Equal(t, row, s.Encode(nil, again))
		s.Apply(again, event(at, 1, map[int]any{colCity: "x"}))
		s.Prune(again)
	})
}
