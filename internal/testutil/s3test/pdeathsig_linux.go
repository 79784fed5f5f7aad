//go:build linux

package s3test

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill MinIO if the test binary dies
// without running its cleanups.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
