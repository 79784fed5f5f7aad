//go:build !linux

package redistest

import "os/exec"

// setParentDeathSignal is a no-op where Pdeathsig is unavailable: a test
// binary that dies without running its cleanups may leave redis-server
// running.
func setParentDeathSignal(*exec.Cmd) {}
