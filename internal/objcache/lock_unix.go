//go:build unix

package objcache

import (
	"os"
	"syscall"
)

// lockShared marks f as read by this process: another process's eviction
// (lockExclusive) then fails. It does not wait.
func lockShared(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
}

// lockExclusive succeeds only when no process holds f shared. It does
// not wait.
func lockExclusive(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
