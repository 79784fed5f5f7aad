package s3test

import (
	"io"
	"net/http"
	"testing"
)

func TestUnsignedRequestsAreRefused(t *testing.T) {
	srv := Start(t)
	for _, auth := range []string{"", "AWS4-HMAC-SHA256 Credential=" + AccessKey + "/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"} {
		req, err := http.NewRequest(http.MethodGet, srv.Endpoint+"/"+srv.Bucket+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
			req.Header.Set("X-Amz-Date", "20260101T000000Z")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if err := resp.Body.Close(); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("authorization %q: status %d, want 403: %s", auth, resp.StatusCode, body)
		}
		if len(srv.Requests()) == 0 {
			t.Errorf("the refused request is not logged")
		}
	}
}

func TestProxyCutsAfterTheBytesAsked(t *testing.T) {
	srv := Start(t)
	p := StartProxy(t, srv.Endpoint)
	p.Cut(10, 1)
	resp, err := http.Get(p.Endpoint + "/" + srv.Bucket + "/")
	if err == nil {
		body, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if rerr == nil {
			t.Fatalf("a response cut after 10 bytes was read whole: %d %q", resp.StatusCode, body)
		}
	} // else the cut broke the status line: the client got no response, as intended
	if p.Cuts() != 1 {
		t.Fatalf("cuts = %d, want 1", p.Cuts())
	}
	// The next connection passes.
	resp, err = http.Get(p.Endpoint + "/" + srv.Bucket + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden { // unsigned, but whole
		t.Fatalf("status %d through the proxy, want 403", resp.StatusCode)
	}
}
