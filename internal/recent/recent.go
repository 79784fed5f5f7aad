// Package recent caches values built from the last few keys seen, for
// what is derived from a registry snapshot (compiled expressions, codecs):
// while a reload is under way, requests with the old and the new snapshot
// alternate, and a cache of one would rebuild on every request.
//
// A Cache is safe for concurrent use. Reads take no lock; a miss builds
// the value under the cache's lock, so one key is built once.
package recent

import (
	"sync"
	"sync/atomic"
)

// Size is how many keys a Cache keeps: the newest ones built.
const Size = 4

// Cache holds the values of the Size keys it built last. The zero value
// is ready to use.
type Cache[K comparable, V any] struct {
	mu      sync.Mutex
	entries atomic.Pointer[[]entry[K, V]] // newest first
	builds  atomic.Int64
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// Get returns key's value, building it with build on a miss. A build that
// fails is not kept.
func (c *Cache[K, V]) Get(key K, build func() (V, error)) (V, error) {
	if v, ok := c.lookup(key); ok {
		return v, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.lookup(key); ok {
		return v, nil
	}
	c.builds.Add(1)
	v, err := build()
	if err != nil {
		return v, err
	}
	var old []entry[K, V]
	if p := c.entries.Load(); p != nil {
		old = *p
	}
	next := make([]entry[K, V], 0, Size)
	next = append(next, entry[K, V]{key, v})
	next = append(next, old[:min(len(old), Size-1)]...)
	c.entries.Store(&next)
	return v, nil
}

func (c *Cache[K, V]) lookup(key K) (V, bool) {
	if p := c.entries.Load(); p != nil {
		for _, e := range *p {
			if e.key == key {
				return e.val, true
			}
		}
	}
	var zero V
	return zero, false
}

// Builds is how many times Get has called a build function.
func (c *Cache[K, V]) Builds() int64 { return c.builds.Load() }
