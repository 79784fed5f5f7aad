// Package benchredis starts a private redis-server for a benchmark
// program, on a free loopback port, and stops it.
package benchredis

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/quiverdata/quiver/online"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
}

// Start runs redis-server with no persistence on a free port.
func Start() (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "quiver-bench-redis-")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server (install Debian's redis-server): %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond); err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			_ = c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return s, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("redis-server on %s did not answer", s.Addr)
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill() // a benchmark's server; its exit status is of no interest
	_ = s.cmd.Wait()
	_ = os.RemoveAll(s.dir)
}

// StartStore starts a server and opens Quiver's Redis store on it; close
// the store, then stop the server.
func StartStore(ctx context.Context) (*Server, *online.Redis, error) {
	s, err := Start()
	if err != nil {
		return nil, nil, err
	}
	store, err := online.OpenRedis(ctx, online.RedisOptions{Addr: s.Addr})
	if err != nil {
		s.Stop()
		return nil, nil, err
	}
	return s, store, nil
}
