package storage

import (
	"context"
	"sync"
)

// Store opens the Bucket of any URI, with one S3 client per bucket kept
// for the Store's life. It is safe for concurrent use.
type Store struct {
	cfg Config

	mu      sync.Mutex
	buckets map[string]*S3
	local   *Local
}

// NewStore returns a Store that opens S3 buckets with cfg.S3.
func NewStore(cfg Config) *Store {
	return &Store{cfg: cfg, buckets: map[string]*S3{}}
}

// Open parses uri (see ParseURI) and returns its bucket and the key
// within it. A local path gives a Local bucket rooted at "/" and the
// path's absolute form, without its leading slash, as the key.
func (s *Store) Open(ctx context.Context, uri string) (Bucket, string, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, "", &Error{Op: "open", URI: uri, Err: err}
	}
	return s.OpenURI(ctx, u)
}

// OpenURI is Open for a parsed URI.
func (s *Store) OpenURI(ctx context.Context, u URI) (Bucket, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.IsLocal() {
		key, err := localKey(u.Key)
		if err != nil {
			return nil, "", &Error{Op: "open", URI: u.Key, Err: err}
		}
		if s.local == nil {
			if s.local, err = NewLocal("/"); err != nil {
				return nil, "", err
			}
		}
		return s.local, key, nil
	}
	if b, ok := s.buckets[u.Bucket]; ok {
		return b, u.Key, nil
	}
	b, err := NewS3(ctx, u.Bucket, s.cfg.S3)
	if err != nil {
		return nil, "", err
	}
	s.buckets[u.Bucket] = b
	return b, u.Key, nil
}
