//go:build linux || darwin

package online

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// lockHolder returns the process id that holds the write lock on the
// embedded store's LOCK file in dir (Pebble takes it with fcntl), or 0 when
// it cannot tell.
func lockHolder(dir string) int {
	f, err := os.Open(filepath.Join(dir, "LOCK"))
	if err != nil {
		return 0
	}
	defer f.Close() // read-only, and closing drops no lock of ours: we took none
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}
