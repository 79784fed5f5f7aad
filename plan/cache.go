package plan

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/quiverdata/quiver/internal/recent"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/transform"
)

// MaxShapes bounds how many request shapes a Cache keeps per registry
// version; past it, an arbitrary one is dropped for each new one.
const MaxShapes = 1024

var maxShapes = MaxShapes // tests lower it

// MaxShapeBytes is the longest request shape a Cache keeps: a request
// that names more (a hostile one repeating a reference a million times,
// each count another shape) is planned for itself and not cached, so the
// cache holds at most MaxShapes × MaxShapeBytes of keys per version.
const MaxShapeBytes = 16 << 10

// Cache keeps the plans of the last few registry versions (package
// recent: two are live during a reload), up to MaxShapes request shapes
// each. A request's shape is its feature references in order, its
// feature service and whether it asks for full names. The zero value is
// ready to use; a Cache is safe for concurrent use.
type Cache struct {
	versions   recent.Cache[*registry.Definitions, *shapes]
	transforms transform.Cache
	builds     atomic.Int64
}

// shapes are one registry version's plans by request shape.
type shapes struct {
	mu    sync.RWMutex
	plans map[string]*Plan
}

// Get returns the plan of req against defs, planning it on first use.
// Errors are not cached: a request that fails is planned again.
func (c *Cache) Get(defs *registry.Definitions, req Request) (*Plan, error) {
	if defs == nil {
		return New(defs, req, &c.transforms)
	}
	s, _ := c.versions.Get(defs, func() (*shapes, error) { // cannot fail
		return &shapes{plans: make(map[string]*Plan)}, nil
	})
	key := shapeKey(req)
	if len(key) > MaxShapeBytes {
		c.builds.Add(1)
		return New(defs, req, &c.transforms)
	}
	s.mu.RLock()
	p, ok := s.plans[key]
	s.mu.RUnlock()
	if ok {
		return p, nil
	}
	c.builds.Add(1)
	p, err := New(defs, req, &c.transforms)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.plans[key]; ok {
		return prev, nil // planned meanwhile: one plan per shape
	}
	if len(s.plans) >= maxShapes {
		for k := range s.plans {
			delete(s.plans, k)
			break
		}
	}
	s.plans[key] = p
	return p, nil
}

// Builds is how many plans the cache has made (for a shape not cached).
func (c *Cache) Builds() int64 { return c.builds.Load() }

// Transforms is the cache of compiled on-demand views plans are made
// with, for callers that evaluate them outside a plan.
func (c *Cache) Transforms() *transform.Cache { return &c.transforms }

// shapeKey is req's shape as a map key: every reference, the service and
// the full-names flag, each length-prefixed so that no two shapes meet.
func shapeKey(req Request) string {
	n := len(req.FeatureService) + 8
	for _, f := range req.Features {
		n += len(f) + 4
	}
	var b strings.Builder
	b.Grow(n)
	if req.FullFeatureNames {
		b.WriteByte('F')
	} else {
		b.WriteByte('f')
	}
	b.WriteString(strconv.Itoa(len(req.FeatureService)))
	b.WriteByte(':')
	b.WriteString(req.FeatureService)
	for _, f := range req.Features {
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
	}
	return b.String()
}
