package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// startAttempts bounds the retries of a start that lost the race for
	// its port between picking it and redis-server binding it.
	startAttempts = 5
	// readyTimeout is how long a started server has to answer PING.
	readyTimeout = 10 * time.Second
	// clusterTimeout bounds forming a cluster and waiting for cluster_state:ok.
	clusterTimeout = 30 * time.Second
	// doTimeout bounds one Do call, connection included.
	doTimeout = 10 * time.Second
	// clusterBusOffset is the distance between a node's client port and its
	// cluster bus port when --cluster-port is not given.
	clusterBusOffset = 10000
	// logTailLines is how much of a server's log errors quote.
	logTailLines = 20
)

// ErrNil is returned by [Server.Do] for a nil reply, such as GET of a
// missing key.
var ErrNil = errors.New("redis: nil reply")

// Error is an error reply from the server, such as
// "ERR unknown command 'NOPE'". [Server.Do] returns it as its error.
type Error string

func (e Error) Error() string { return string(e) }

var (
	errExited  = errors.New("redis-server exited before it was ready")
	errForeign = errors.New("another process answered on the port")
)

// Option configures [Start].
type Option func(*config)

type config struct {
	args []string
}

// WithArgs appends extra redis-server command-line arguments, for example
// WithArgs("--maxmemory", "10mb"). Later arguments override earlier ones,
// including the defaults set by [Start].
func WithArgs(extra ...string) Option {
	return func(c *config) { c.args = append(c.args, extra...) }
}

// Server is a redis-server process owned by one test.
type Server struct {
	addr    string
	port    int
	dir     string
	logFile string
	outFile string

	cmd      *exec.Cmd
	exited   chan struct{} // closed once cmd.Wait has returned
	waitErr  error         // cmd.Wait's result; read only after exited is closed
	stopOnce sync.Once
}

// Start runs a redis-server on a free 127.0.0.1 port for the test and
// returns once it answers PING. The server keeps no data on disk, works in
// its own t.TempDir(), and is stopped by t.Cleanup.
//
// If redis-server is not on PATH the test is skipped, or fails when the
// environment variable CI is "true".
//
// With WithArgs("--cluster-enabled", "yes") Start also keeps the node's
// cluster bus port (port+10000) free and, unless given, puts
// --cluster-config-file in the server's directory.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}

	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var s *Server
		s, err = start(t, bin, cfg.args)
		if err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("redis-server %s (dir %s), last log lines:\n%s", s.addr, s.dir, s.logTail())
				}
			})
			return s
		}
		// Only a lost port race is worth another try with a new port.
		if !errors.Is(err, errExited) && !errors.Is(err, errForeign) {
			break
		}
	}
	t.Fatalf("start redis-server: %v", err)
	return nil
}

// start makes one attempt at starting a server on a new port.
func start(t testing.TB, bin string, extra []string) (*Server, error) {
	dir := t.TempDir()
	cluster := clusterEnabled(extra) && !slices.Contains(extra, "--cluster-port")
	port, err := freePort(cluster)
	if err != nil {
		return nil, err
	}
	s := &Server{
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		port:    port,
		dir:     dir,
		logFile: filepath.Join(dir, "redis.log"),
		outFile: filepath.Join(dir, "redis.out"),
		exited:  make(chan struct{}),
	}

	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", s.logFile,
	}
	if clusterEnabled(extra) && !slices.Contains(extra, "--cluster-config-file") {
		args = append(args, "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
	}
	args = append(args, extra...)

	// Anything redis-server prints before it opens its log file (bad
	// arguments, for one) lands in redis.out.
	out, err := os.Create(s.outFile)
	if err != nil {
		return nil, fmt.Errorf("create output file: %w", err)
	}
	defer out.Close() // the child has its own descriptor
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	s.cmd.Stdout = out
	s.cmd.Stderr = out
	setParentDeathSignal(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(time.Now().Add(readyTimeout)); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w; last log lines:\n%s", err, s.logTail())
	}
	return s, nil
}

// waitReady polls the server with PING until it answers +PONG, then checks
// that the answer came from our process and not from one that took the
// port first.
func (s *Server) waitReady(deadline time.Time) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%w (port %d): %v", errExited, s.port, s.waitErr)
		default:
		}
		err := ping(s.addr, deadline)
		if err == nil {
			return s.checkOwner()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for PONG from %s: %w", s.addr, err)
		}
		select {
		case <-s.exited:
		case <-tick.C:
		}
	}
}

// ping sends an inline PING over a raw connection and expects +PONG.
func ping(addr string, deadline time.Time) error {
	conn, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimRight(line, "\r\n"); line != "+PONG" {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// checkOwner makes sure the server on s.addr is the process we started.
func (s *Server) checkOwner() error {
	info, err := s.Do("INFO", "server")
	if err != nil {
		return fmt.Errorf("%w: INFO server: %v", errForeign, err)
	}
	want := "process_id:" + strconv.Itoa(s.cmd.Process.Pid)
	for line := range strings.Lines(info) {
		if strings.TrimRight(line, "\r\n") == want {
			return nil
		}
	}
	return fmt.Errorf("%w: %s does not report %s", errForeign, s.addr, want)
}

// Addr returns the server's address, "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Stop kills the server and waits for it to exit. It is safe to call more
// than once; t.Cleanup calls it too.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		// Kill fails harmlessly if the process has already exited.
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

// Do sends one command over a fresh connection and returns the reply:
// simple and bulk strings as they are, integers as decimal text, and arrays
// as their elements joined by "\n" (nil elements as ""). An error reply is
// returned as an [Error], a nil reply as [ErrNil]. Do gives up after 10s,
// so it is not meant for blocking commands.
func (s *Server) Do(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("redis: no command")
	}
	conn, err := net.DialTimeout("tcp", s.addr, doTimeout)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(doTimeout)); err != nil {
		return "", fmt.Errorf("set deadline: %w", err)
	}

	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return "", fmt.Errorf("send %s: %w", args[0], err)
	}
	return readReply(bufio.NewReader(conn))
}

// readReply decodes one RESP2 reply.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	line, ok := strings.CutSuffix(line, "\r\n")
	if !ok || line == "" {
		return "", fmt.Errorf("redis: malformed reply line %q", line)
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+':
		return rest, nil
	case '-':
		return "", Error(rest)
	case ':':
		if _, err := strconv.ParseInt(rest, 10, 64); err != nil {
			return "", fmt.Errorf("redis: malformed integer reply %q", line)
		}
		return rest, nil
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil {
			return "", fmt.Errorf("redis: malformed bulk length %q", line)
		}
		if n < 0 {
			return "", ErrNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("read bulk string: %w", err)
		}
		if string(buf[n:]) != "\r\n" {
			return "", errors.New("redis: bulk string not terminated by CRLF")
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(rest)
		if err != nil {
			return "", fmt.Errorf("redis: malformed array length %q", line)
		}
		if n < 0 {
			return "", ErrNil
		}
		elems := make([]string, 0, n)
		for range n {
			e, err := readReply(r)
			if err != nil && !errors.Is(err, ErrNil) {
				return "", err
			}
			elems = append(elems, e)
		}
		return strings.Join(elems, "\n"), nil
	default:
		return "", fmt.Errorf("redis: unsupported reply %q", line)
	}
}

// logTail returns the last lines of the server's log and of anything it
// printed before opening the log.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, name := range []string{s.outFile, s.logFile} {
		data, err := os.ReadFile(name)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(&b, "(read %s: %v)\n", name, err)
			}
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > logTailLines {
			lines = lines[len(lines)-logTailLines:]
		}
		if len(lines) == 1 && lines[0] == "" {
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", name, strings.Join(lines, "\n"))
	}
	if b.Len() == 0 {
		return "(no output)"
	}
	return b.String()
}

// Cluster is a Redis Cluster of masters without replicas, owned by one test.
type Cluster struct {
	// Servers are the cluster's nodes, all masters.
	Servers []*Server
}

// StartCluster starts masters redis-server nodes (at least 3, Redis
// Cluster's minimum) with --cluster-enabled yes and
// --cluster-node-timeout 5000, forms a cluster of them with
// redis-cli --cluster create, and returns once every node reports
// cluster_state:ok. Each node keeps its nodes.conf in its own directory.
// The nodes are stopped by t.Cleanup.
//
// If redis-server or redis-cli is not on PATH the test is skipped, or
// fails when the environment variable CI is "true".
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: StartCluster needs at least 3 masters, got %d", masters)
	}
	cli := lookPath(t, "redis-cli")

	c := &Cluster{Servers: make([]*Server, 0, masters)}
	for range masters {
		c.Servers = append(c.Servers, Start(t, WithArgs(
			"--cluster-enabled", "yes",
			"--cluster-node-timeout", "5000",
		)))
	}

	ctx, cancel := context.WithTimeout(t.Context(), clusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("create redis cluster: %v\n%s", err, out)
	}
	if err := c.waitOK(ctx); err != nil {
		t.Fatalf("wait for redis cluster: %v", err)
	}
	return c
}

// waitOK polls CLUSTER INFO on every node until all report cluster_state:ok.
func (c *Cluster) waitOK(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var notOK []string
		for _, s := range c.Servers {
			info, err := s.Do("CLUSTER", "INFO")
			if err != nil {
				notOK = append(notOK, fmt.Sprintf("%s: %v", s.addr, err))
			} else if state := clusterState(info); state != "ok" {
				notOK = append(notOK, fmt.Sprintf("%s: cluster_state:%s", s.addr, state))
			}
		}
		if len(notOK) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; nodes not ready: %s", ctx.Err(), strings.Join(notOK, ", "))
		case <-tick.C:
		}
	}
}

func clusterState(info string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "cluster_state:"); ok {
			return v
		}
	}
	return "(missing)"
}

// Addrs returns the nodes' addresses, usable as cluster seed addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Stop stops every node. It is safe to call more than once; t.Cleanup
// calls it too.
func (c *Cluster) Stop() {
	for _, s := range c.Servers {
		s.Stop()
	}
}

// lookPath finds a Redis binary, skipping the test when it is missing, or
// failing it under CI=true.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("!!! %s not found on PATH and CI=true: the Debian package redis-server must be installed (.ci/run installs it with apt-get): %v", name, err)
	}
	t.Skipf("!!! %s not found on PATH: install Debian's redis-server package to run this test; under CI=true this is a failure", name)
	return ""
}

// freePort returns a 127.0.0.1 port that was free a moment ago. For a
// cluster node it also requires the bus port, port+10000, to be free and
// valid. The port may be taken again before redis-server binds it; Start
// retries when that happens.
func freePort(clusterBus bool) (int, error) {
	const tries = 100
	for range tries {
		port, err := listenFree(0)
		if err != nil {
			return 0, err
		}
		if !clusterBus {
			return port, nil
		}
		if port+clusterBusOffset > 65535 {
			continue
		}
		if _, err := listenFree(port + clusterBusOffset); err == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port with a free cluster bus port: gave up after %d tries", tries)
}

// listenFree listens on 127.0.0.1:port (0 for any), closes the listener
// and returns the port.
func listenFree(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// clusterEnabled reports whether args contain --cluster-enabled yes.
func clusterEnabled(args []string) bool {
	enabled := false
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--cluster-enabled" {
			enabled = strings.EqualFold(args[i+1], "yes")
		}
	}
	return enabled
}
