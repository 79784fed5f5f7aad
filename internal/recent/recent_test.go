package recent

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCacheKeepsTheLastKeys(t *testing.T) {
	var c Cache[int, string]
	build := func(k int) func() (string, error) {
		return func() (string, error) { return string(rune('a' + k)), nil }
	}
	for range 10 { // two keys alternating: each built once
		for _, k := range []int{1, 2} {
			v, err := c.Get(k, build(k))
			require.NoError(t, err)
			require.Equal(t, string(rune('a'+k)), v)
		}
	}
	require.EqualValues(t, 2, c.Builds())
	for k := 3; k <= Size+1; k++ {
		_, err := c.Get(k, build(k))
		require.NoError(t, err)
	}
	require.EqualValues(t, Size+1, c.Builds())
	_, err := c.Get(1, build(1))
	require.NoError(t, err)
	require.EqualValues(t, Size+2, c.Builds(), "the oldest key was dropped")

	_, err = c.Get(9, func() (string, error) { return "", errors.New("no") })
	require.Error(t, err)
	_, err = c.Get(9, build(9))
	require.NoError(t, err, "a failed build is not kept")
}

// TestCacheConcurrent: concurrent readers of a few keys build each once.
func TestCacheConcurrent(t *testing.T) {
	var c Cache[int, int]
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				k := (g + i) % 3
				v, err := c.Get(k, func() (int, error) { return k * 10, nil })
				if err != nil || v != k*10 {
					t.Errorf("key %d: got %d, %v", k, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 3, c.Builds())
}
