package s3test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIOBinary returns the MinIO server to test against: $QUIVER_MINIO
// when set, else minio in MinIOCacheDir when it was built there
// (scripts/minio.sh), else "".
func MinIOBinary() string {
	if p := os.Getenv("QUIVER_MINIO"); p != "" {
		return p
	}
	p := filepath.Join(MinIOCacheDir(), "minio")
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return ""
}

// MinIOCacheDir is where scripts/minio.sh builds MinIO:
// $XDG_CACHE_HOME/quiver/minio, or ~/.cache/quiver/minio.
func MinIOCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "quiver", "minio")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "quiver", "minio")
	}
	return filepath.Join(home, ".cache", "quiver", "minio")
}

// StartMinIO starts a MinIO server with its data in t.TempDir(), behind
// the same signature check, fault injection and request log as Start,
// with an empty bucket "quiver-test"; it is stopped when t ends. Without
// a MinIO binary (see MinIOBinary) the test is skipped: MinIO is never
// built by a test.
func StartMinIO(t testing.TB) *Server {
	t.Helper()
	bin := MinIOBinary()
	if bin == "" {
		t.Skip("no MinIO binary: run scripts/minio.sh once, or set QUIVER_MINIO")
	}
	addr := freeAddr(t)
	console := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "server", "--quiet", "--address", addr, "--console-address", console, t.TempDir())
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_REGION="+Region)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("s3test: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	target := &url.URL{Scheme: "http", Host: addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(target.String() + "/minio/health/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("s3test: MinIO exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("s3test: MinIO not ready on %s after 60s\n%s", addr, logs.String())
		}
	}

	s := &Server{Bucket: "quiver-test"}
	proxy := &httputil.ReverseProxy{
		// The Host header is signed: keep the client's.
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(s.handler(proxy))
	t.Cleanup(srv.Close)
	s.Endpoint = srv.URL

	s.minio = s3.New(s3.Options{Region: Region, Credentials: Credentials(AccessKey, SecretKey),
		BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true})
	// Ready on its health endpoint is not yet ready for requests: until
	// its object layer is up, MinIO answers 503 XMinioServerNotInitialized.
	for {
		_, err := s.minio.ListBuckets(context.Background(), &s3.ListBucketsInput{})
		if err == nil || !strings.Contains(err.Error(), "XMinioServerNotInitialized") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s3test: MinIO not initialized on %s after 60s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.CreateBucket(t, s.Bucket)
	s.ResetRequests()
	return s
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return addr
}
