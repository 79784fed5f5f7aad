// Package s3test starts real S3-protocol servers for tests.
//
// [Start] serves an in-memory object store (gofakes3) over HTTP, and
// [StartTLS] over HTTPS, on a free loopback port, with one empty bucket,
// and stops it when the test ends.
// Every request must carry a valid AWS Signature Version 4 made with the
// server's credentials: a wrong access key or secret is refused with 403,
// as S3 refuses it. The server honours ranged GETs, multipart uploads and
// "If-None-Match: *" on PUT (atomically), and If-Match on GET and HEAD; it
// does not honour conditions on CompleteMultipartUpload.
//
//	srv := s3test.Start(t)
//	opts := srv.Options()        // endpoint, region, path style, credentials
//	b, err := storage.NewS3(ctx, srv.Bucket, opts)
//
// [StartMinIO] runs a MinIO server behind the same checks, when a MinIO
// binary was built (scripts/minio.sh) or is named by $QUIVER_MINIO, and
// skips the test otherwise: no test builds MinIO.
//
// Faults are injected by the test: [Server.FailNext] answers the next
// requests with a 500 (which clients retry); [StartProxy] puts a TCP proxy
// in front of any address whose [Proxy.Cut] ends connections after a
// number of response bytes, as a network that drops mid-transfer does,
// and whose [Proxy.Stall] holds them open and silent, as a store that
// stops answering does.
// [Server.Requests] lists what the server was asked, to check that a
// client used multipart uploads or aborted one.
package s3test

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/quiverdata/quiver/storage"
)

// Test credentials and region; they sign requests to a Server and to
// nothing else.
const (
	AccessKey = "QUIVERTESTACCESSKEY"
	SecretKey = "quiver-test-secret-0123456789abcdefghij"
	Region    = "us-east-1"
)

// Server is a running S3-protocol server.
type Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT.
	Endpoint string
	// Bucket is the name of the bucket made at start.
	Bucket string
	// CAFile is the PEM file of the server's certificate (StartTLS only).
	CAFile string

	backend *s3mem.Backend // gofakes3's store; nil for MinIO
	minio   *s3.Client     // a client of MinIO, for set-up

	mu        sync.Mutex
	failN     int
	failCode  int
	failMatch func(Request) bool
	requests  []Request
	gen       int // counts ResetRequests
}

// Request is one request the server received.
type Request struct {
	Method string
	// Path is the request's path, "/bucket/key".
	Path string
	// Query is the raw query ("uploadId=...&partNumber=2").
	Query string
	// Status is what the server answered with.
	Status int
}

// Start starts a server with an empty bucket "quiver-test" and stops it
// when t ends.
func Start(t testing.TB) *Server { return start(t, false) }

// StartTLS is Start over HTTPS with a certificate of its own CA, whose
// PEM file is CAFile.
func StartTLS(t testing.TB) *Server { return start(t, true) }

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	s := &Server{Bucket: "quiver-test", backend: s3mem.New()}
	if err := s.backend.CreateBucket(s.Bucket); err != nil {
		t.Fatalf("s3test: create bucket: %v", err)
	}
	fake := gofakes3.New(s.backend, gofakes3.WithoutVersioning(), gofakes3.WithTimeSkewLimit(time.Hour))
	srv := httptest.NewUnstartedServer(s.handler(fake.Server()))
	// Refused handshakes and dropped connections are what tests provoke.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		srv.StartTLS()
		s.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		block := &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}
		if err := os.WriteFile(s.CAFile, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatalf("s3test: write CA file: %v", err)
		}
	} else {
		srv.Start()
	}
	s.Endpoint = srv.URL
	t.Cleanup(srv.Close)
	return s
}

// Options are storage options for this server: its endpoint, path-style
// addressing, the smallest part size (so that a few MiB take the
// multipart path), its CA file (StartTLS) and its credentials.
func (s *Server) Options() storage.S3Options {
	return storage.S3Options{
		Endpoint:    s.Endpoint,
		Region:      Region,
		PathStyle:   true,
		PartSize:    storage.MinPartSize,
		CAFile:      s.CAFile,
		Credentials: Credentials(AccessKey, SecretKey),
	}
}

// Credentials returns a static credentials provider.
func Credentials(access, secret string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(access, secret, "")
}

// CreateBucket makes another bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if s.minio != nil {
		if _, err := s.minio.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
			t.Fatalf("s3test: create bucket %s: %v", name, err)
		}
		return
	}
	if err := s.backend.CreateBucket(name); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
}

// FailNext makes the next n requests fail with status (500 or 503, which
// clients retry; 4xx, which they do not) before they reach the store.
func (s *Server) FailNext(n, status int) { s.FailNextMatching(n, status, nil) }

// FailNextMatching is FailNext for the requests match accepts only (all
// when match is nil), such as the parts of a multipart upload.
func (s *Server) FailNextMatching(n, status int, match func(Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode, s.failMatch = n, status, match
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.gen++
}

// handler checks signatures and injects failures before the store.
func (s *Server) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The request is logged before it is served, and its status as
		// soon as it is written: a client that has its answer finds the
		// request in the log.
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: http.StatusOK})
		idx, gen := len(s.requests)-1, s.gen
		s.mu.Unlock()
		rw := &statusWriter{ResponseWriter: w, status: func(code int) {
			s.mu.Lock()
			if gen == s.gen { // not reset since
				s.requests[idx].Status = code
			}
			s.mu.Unlock()
		}}
		if code, msg := verifySigV4(r, AccessKey, SecretKey); code != "" {
			writeError(rw, r, http.StatusForbidden, code, msg)
			return
		}
		s.mu.Lock()
		fail := s.failN > 0 && (s.failMatch == nil || s.failMatch(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}))
		status := s.failCode
		if fail {
			s.failN--
		}
		s.mu.Unlock()
		if fail {
			code := "InternalError"
			if status == http.StatusServiceUnavailable {
				code = "SlowDown"
			}
			writeError(rw, r, status, code, "injected failure")
			return
		}
		if m := r.Header.Get("If-Match"); m != "" && s.backend != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if !s.etagMatches(r.URL.Path, m) {
				writeError(rw, r, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
				return
			}
		}
		next.ServeHTTP(rw, r)
	})
}

// etagMatches reports whether the object at a path-style path
// ("/bucket/key") has the ETag m; gofakes3 checks If-Match on PUT only.
// (The check and the read that follows are not atomic; for tests that
// replace an object between two reads, that is enough.)
func (s *Server) etagMatches(p, m string) bool {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	obj, err := s.backend.HeadObject(bucket, key)
	if err != nil {
		return true // the store answers for a missing object
	}
	return strings.Trim(m, `"`) == hex.EncodeToString(obj.Hash)
}

type statusWriter struct {
	http.ResponseWriter
	status func(code int)
	wrote  bool
}

// WriteHeader records the status; a second call (gofakes3 makes some) is
// dropped, as net/http would drop it.
func (w *statusWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.status(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// writeError answers with an S3 error document. It reads the request's
// body first, as S3 does, so that the client sees the answer rather than a
// connection reset in the middle of its upload.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<Error><Code>%s</Code><Message>%s</Message><RequestId>s3test</RequestId></Error>",
		code, strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(msg))
}
