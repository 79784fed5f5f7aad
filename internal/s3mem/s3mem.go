// Package s3mem serves an S3-protocol object store in process, for the
// benchmark programs and the demo: gofakes3 in memory, on a free loopback
// port, with one bucket. What a benchmark over it measures is the cost of
// the protocol and of staging objects into Quiver's object cache, not of
// a network.
//
//	srv, err := s3mem.Start()
//	defer srv.Close()
//	err = srv.Upload(ctx, "data/view1/part-0.parquet", "root/view1/part-0.parquet")
//	opts := srv.Options() // or s3mem.Options(srv.Endpoint()) in a child process
//	eng, err := offline.Open(offline.Options{DataRoot: s3mem.URI("root"),
//		Storage: storage.Config{S3: opts}, ...})
//
// The server does not check request signatures; it counts requests
// ([Server.Requests]) so that a program can report how many a case made.
package s3mem

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/quiverdata/quiver/storage"
)

// Bucket is the one bucket of the store.
const Bucket = "quiver"

// Server is a running in-process object store.
type Server struct {
	endpoint string
	srv      *http.Server
	done     chan error
	requests atomic.Int64
}

// Start serves an empty store with one bucket, Bucket, on a free
// loopback port, until Close.
func Start() (*Server, error) {
	backend := s3mem.New()
	if err := backend.CreateBucket(Bucket); err != nil {
		return nil, fmt.Errorf("object store: create bucket %s: %w", Bucket, err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	s := &Server{endpoint: "http://" + lis.Addr().String(), done: make(chan error, 1)}
	handler := gofakes3.New(backend, gofakes3.WithoutVersioning()).Server()
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		handler.ServeHTTP(w, r)
	})}
	go func() { s.done <- s.srv.Serve(lis) }()
	return s, nil
}

// Endpoint is the store's base URL, for another process to reach it
// with Options.
func (s *Server) Endpoint() string { return s.endpoint }

// Options are the client options that reach the store.
func (s *Server) Options() storage.S3Options { return Options(s.endpoint) }

// Options are the client options that reach a store served at endpoint
// (a Server's Endpoint, passed to a child process).
func Options(endpoint string) storage.S3Options {
	return storage.S3Options{Endpoint: endpoint, Region: "us-east-1", PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench-secret", "")}
}

// URI is the s3:// URI of key (or of a prefix, or a glob) in Bucket.
func URI(key string) string { return "s3://" + Bucket + "/" + strings.TrimPrefix(key, "/") }

// Requests is how many HTTP requests the store has answered so far,
// uploads included.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Close stops the store; its objects are gone.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Upload puts the local file at key.
func (s *Server) Upload(ctx context.Context, local, key string) error {
	b, err := storage.NewS3(ctx, Bucket, s.Options())
	if err != nil {
		return err
	}
	fh, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("upload %s: %w", local, err)
	}
	defer fh.Close() // read-only
	if _, err := b.Put(ctx, key, fh); err != nil {
		return fmt.Errorf("upload %s to %s: %w", local, URI(key), err)
	}
	return nil
}

// EmptyCache removes the copies in an object cache's directory, so that
// the next read of a dataset fetches it again (the cache notices a copy
// removed behind its back). A missing directory is empty.
func EmptyCache(dir string) error {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("empty the object cache %s: %w", dir, err)
	}
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".obj") {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				return fmt.Errorf("empty the object cache: %w", err)
			}
		}
	}
	return nil
}
