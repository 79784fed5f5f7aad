//go:build !linux

package s3test

import "os/exec"

// setParentDeathSignal is a no-op where Pdeathsig is unavailable.
func setParentDeathSignal(*exec.Cmd) {}
