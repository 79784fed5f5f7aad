package online

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEmbeddedHolder is not a test: run with QUIVER_TEST_HOLD_STORE=DIR
// (by TestEmbeddedHeldByAnotherProcess), it opens the store in DIR, says
// "held" and keeps it until its standard input closes.
func TestEmbeddedHolder(t *testing.T) {
	dir := os.Getenv("QUIVER_TEST_HOLD_STORE")
	if dir == "" {
		t.Skip("a helper process for TestEmbeddedHeldByAnotherProcess")
	}
	s, err := OpenEmbedded(dir)
	require.NoError(t, err)
	_, err = os.Stdout.WriteString("held\n")
	require.NoError(t, err)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes it
	require.NoError(t, s.Close())
}

func TestEmbeddedHeldByAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "online")
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedHolder$")
	cmd.Env = append(os.Environ(), "QUIVER_TEST_HOLD_STORE="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "held\n", line)

	_, err = OpenEmbedded(dir)
	require.ErrorIs(t, err, ErrLocked)
	require.ErrorContains(t, err, fmt.Sprintf("open embedded online store %s: another Quiver process (pid %d) holds it", dir, cmd.Process.Pid))
	require.ErrorContains(t, err, "stop that process (quiver serve, dev, stream or materialize), or share one online store")
	require.NotContains(t, err.Error(), "quiver: quiver:")

	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	s, err := OpenEmbedded(dir)
	require.NoError(t, err, "free once the other process is gone")
	require.NoError(t, s.Close())
}

func TestEmbeddedOpenedTwice(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenEmbedded(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	_, err = OpenEmbedded(dir)
	require.ErrorIs(t, err, ErrLocked)
	require.ErrorContains(t, err, "open embedded online store "+dir+": this process, which opened it already, holds it")
}
