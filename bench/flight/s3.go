package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/quiverdata/quiver/storage"
)

// benchBucket is the bucket of the in-process object store.
const benchBucket = "quiver-bench"

// objectStore is an S3-protocol server (gofakes3, in memory) on loopback,
// with one bucket: the cost of the protocol and of staging, not of a
// network.
type objectStore struct {
	opts storage.S3Options
	srv  *http.Server
	done chan error
}

// startObjectStore starts the store.
func startObjectStore() (*objectStore, error) {
	backend := s3mem.New()
	if err := backend.CreateBucket(benchBucket); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &objectStore{srv: &http.Server{Handler: gofakes3.New(backend, gofakes3.WithoutVersioning()).Server()}, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(lis) }()
	s.opts = storage.S3Options{Endpoint: "http://" + lis.Addr().String(), Region: "us-east-1", PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench-secret", "")}
	return s, nil
}

// Close stops the store.
func (s *objectStore) Close() error {
	err := s.srv.Close()
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// upload puts a local file at key.
func (s *objectStore) upload(ctx context.Context, local, key string) error {
	b, err := storage.NewS3(ctx, benchBucket, s.opts)
	if err != nil {
		return err
	}
	fh, err := os.Open(local)
	if err != nil {
		return err
	}
	defer fh.Close() // read-only
	if _, err := b.Put(ctx, key, fh); err != nil {
		return fmt.Errorf("upload %s: %w", local, err)
	}
	return nil
}

// emptyCache removes the copies in an object cache's directory, so that
// the next read of a dataset fetches it again (the cache notices a copy
// removed behind its back).
func emptyCache(dir string) error {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".obj") {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
