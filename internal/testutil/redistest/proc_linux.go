//go:build linux

package redistest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill redis-server if the test binary
// dies without running its cleanups (a panic or a -timeout, say), so no
// orphaned servers are left behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
