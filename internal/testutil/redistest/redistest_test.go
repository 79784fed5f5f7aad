package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStartDo(t *testing.T) {
	t.Parallel()
	s := Start(t)

	require.Equal(t, "127.0.0.1:"+strconv.Itoa(s.Port()), s.Addr())

	got, err := s.Do("PING")
	require.NoError(t, err)
	require.Equal(t, "PONG", got)

	got, err = s.Do("SET", "k", "v")
	require.NoError(t, err)
	require.Equal(t, "OK", got)

	got, err = s.Do("GET", "k")
	require.NoError(t, err)
	require.Equal(t, "v", got)

	// Binary-safe bulk strings, integers, nil and arrays.
	_, err = s.Do("SET", "odd key", "line1\r\nline2")
	require.NoError(t, err)
	got, err = s.Do("GET", "odd key")
	require.NoError(t, err)
	require.Equal(t, "line1\r\nline2", got)

	got, err = s.Do("INCRBY", "n", "-42")
	require.NoError(t, err)
	require.Equal(t, "-42", got)

	_, err = s.Do("GET", "missing")
	require.ErrorIs(t, err, ErrNil)

	_, err = s.Do("RPUSH", "l", "a", "b", "c")
	require.NoError(t, err)
	got, err = s.Do("LRANGE", "l", "0", "-1")
	require.NoError(t, err)
	require.Equal(t, "a\nb\nc", got)

	got, err = s.Do("MGET", "k", "missing")
	require.NoError(t, err)
	require.Equal(t, "v\n", got)
}

func TestDoErrorReply(t *testing.T) {
	t.Parallel()
	s := Start(t)

	_, err := s.Do("NOSUCHCOMMAND", "x")
	require.Error(t, err)
	var replyErr Error
	require.True(t, errors.As(err, &replyErr), "want an Error reply, got %T: %v", err, err)
	require.True(t, strings.HasPrefix(string(replyErr), "ERR unknown command"), "got %q", replyErr)

	_, err = s.Do("SET", "k", "v")
	require.NoError(t, err)
	_, err = s.Do("INCR", "k")
	require.ErrorAs(t, err, &replyErr)
	require.Contains(t, err.Error(), "not an integer")

	_, err = s.Do()
	require.Error(t, err)
}

func TestStop(t *testing.T) {
	t.Parallel()
	s := Start(t)
	_, err := s.Do("SET", "k", "v")
	require.NoError(t, err)

	s.Stop()
	require.NotNil(t, s.cmd.ProcessState, "process not reaped")
	_, err = s.Do("GET", "k")
	require.Error(t, err)
	var replyErr Error
	require.False(t, errors.As(err, &replyErr), "want a connection error, got reply %v", err)

	s.Stop() // idempotent; t.Cleanup calls it once more
}

func TestServersAreIndependent(t *testing.T) {
	t.Parallel()
	a := Start(t)
	b := Start(t)
	require.NotEqual(t, a.Port(), b.Port())
	require.NotEqual(t, a.Addr(), b.Addr())

	_, err := a.Do("SET", "k", "from-a")
	require.NoError(t, err)
	_, err = b.Do("GET", "k")
	require.ErrorIs(t, err, ErrNil)

	_, err = b.Do("SET", "k", "from-b")
	require.NoError(t, err)
	got, err := a.Do("GET", "k")
	require.NoError(t, err)
	require.Equal(t, "from-a", got)

	// No persistence: nothing written to the server's directory.
	got, err = a.Do("CONFIG", "GET", "save")
	require.NoError(t, err)
	require.Equal(t, "save\n", got)
}

func TestWithArgs(t *testing.T) {
	t.Parallel()
	s := Start(t, WithArgs("--maxmemory", "12345678"))
	got, err := s.Do("CONFIG", "GET", "maxmemory")
	require.NoError(t, err)
	require.Equal(t, "maxmemory\n12345678", got)
}

func TestStartCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)

	addrs := c.Addrs()
	require.Len(t, addrs, 3)
	require.Len(t, c.Servers, 3)
	seen := map[string]bool{}
	for i, s := range c.Servers {
		require.Equal(t, s.Addr(), addrs[i])
		require.False(t, seen[s.Addr()], "duplicate address %s", s.Addr())
		seen[s.Addr()] = true

		info, err := s.Do("CLUSTER", "INFO")
		require.NoError(t, err)
		require.Contains(t, info, "cluster_state:ok")
		require.Contains(t, info, "cluster_known_nodes:3")
		require.Contains(t, info, "cluster_size:3")
	}

	// Every key lands on exactly one node; the others redirect.
	var owners int
	for _, s := range c.Servers {
		_, err := s.Do("SET", "k", "v")
		if err == nil {
			owners++
			continue
		}
		require.Contains(t, err.Error(), "MOVED")
	}
	require.Equal(t, 1, owners)
}

func TestReadReplyMalformed(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "\r\n", "?x\r\n", "$3\r\nab", ":x\r\n", "+OK\n"} {
		_, err := readReply(bufio.NewReader(strings.NewReader(in)))
		require.Error(t, err, "input %q", in)
	}
}

func TestClusterEnabled(t *testing.T) {
	t.Parallel()
	require.True(t, clusterEnabled([]string{"--cluster-enabled", "yes"}))
	require.False(t, clusterEnabled([]string{"--cluster-enabled", "no"}))
	require.False(t, clusterEnabled([]string{"--cluster-enabled"}))
	require.False(t, clusterEnabled(nil))
}

// fakeTB records Skipf and Fatalf instead of acting on them.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with f on a new goroutine, as Goexit needs.
func (f *fakeTB) run(fn func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())

	for _, start := range []func(testing.TB){
		func(tb testing.TB) { Start(tb) },
		func(tb testing.TB) { StartCluster(tb, 3) },
	} {
		t.Setenv("CI", "")
		f := &fakeTB{TB: t}
		f.run(start)
		require.Contains(t, f.skipped, "not found on PATH: install Debian's redis-server package")
		require.Empty(t, f.failed)

		t.Setenv("CI", "true")
		f = &fakeTB{TB: t}
		f.run(start)
		require.Contains(t, f.failed, "the Debian package redis-server must be installed")
		require.Empty(t, f.skipped)
	}
}
