//go:build !linux

package sparktest

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup is a no-op where process groups and Pdeathsig are not
// available: a test binary that dies without running its cleanups may
// leave the server running.
func setProcessGroup(*exec.Cmd) {}

// signalGroup signals the process alone.
func signalGroup(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}
