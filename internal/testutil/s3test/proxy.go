package s3test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy to a target address that the test can make cut
// connections mid-response.
type Proxy struct {
	// Endpoint is the proxy's base URL, http://127.0.0.1:PORT.
	Endpoint string

	target string
	ln     net.Listener

	mu     sync.Mutex
	limit  int64 // response bytes a connection passes before it is cut; <0: no cut
	times  int   // connections still to cut; <0: every one
	stall  bool  // hold the connection open instead of closing it
	cuts   int   // connections cut or stalled
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
}

// StartProxy proxies a free loopback port to target ("127.0.0.1:PORT" or
// an http:// URL) and stops when t ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	if len(target) > 7 && target[:7] == "http://" {
		target = target[7:]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: proxy listen: %v", err)
	}
	p := &Proxy{Endpoint: "http://" + ln.Addr().String(), target: target, ln: ln, limit: -1, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Cut makes the next times connections (every one when times < 0) close,
// both ways, after they have passed after bytes of response (headers
// included) from the moment they open or Cut is called. Cut(-1, 0) stops
// cutting.
func (p *Proxy) Cut(after int64, times int) { p.set(after, times, false) }

// Stall is Cut, but the connections stay open and silent after their
// bytes, until the client closes them: a store that stops answering.
func (p *Proxy) Stall(after int64, times int) { p.set(after, times, true) }

func (p *Proxy) set(after int64, times int, stall bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit, p.times, p.stall = after, times, stall
	// Connections already open count from now: close them, so that the
	// client opens new ones the cut applies to.
	for c := range p.conns {
		_ = c.Close()
	}
}

// Cuts is how many connections the proxy has cut.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		limit := int64(-1)
		if p.limit >= 0 && p.times != 0 {
			limit = p.limit
			if p.times > 0 {
				p.times--
			}
		}
		stall := p.stall
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c, limit, stall)
	}
}

func (p *Proxy) serve(c net.Conn, limit int64, stall bool) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		_ = c.Close()
	}()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer func() { _ = up.Close() }()
	clientDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		_ = up.Close()
		close(clientDone)
	}()
	if limit < 0 {
		_, _ = io.Copy(c, up)
		return
	}
	_, err = io.CopyN(c, up, limit)
	if err != nil {
		return // the response ended before the limit
	}
	p.mu.Lock()
	p.cuts++
	p.mu.Unlock()
	if stall {
		// Stop forwarding; wait for the client to give up (its close ends
		// the copy above) or for the proxy to close (which closes c).
		<-clientDone
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}
