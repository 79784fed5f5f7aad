//go:build !unix

package objcache

import "os"

// Without flock, copies held by other processes are not protected from
// this one's evictions (see the package comment).
func lockShared(*os.File) error { return nil }

func lockExclusive(*os.File) error { return nil }
