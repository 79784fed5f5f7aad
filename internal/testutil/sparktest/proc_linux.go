//go:build linux

package sparktest

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the launcher (which execs the JVM) in a process
// group of its own, so that Stop reaches every process it starts, and makes
// the kernel kill it if the test binary dies without running its cleanups.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
