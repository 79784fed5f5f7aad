//go:build unix

package server

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps a file read-only into memory, faulted in at once when
// populate (where the system can); unmap releases it. Saved datasets are
// served from the mapping, so their batches are not copied out of the
// page cache before they are sent.
//
// The mapping is shared: a file truncated while mapped raises SIGBUS on a
// read past its new end, which dataset.run turns into an error.
func mapFile(fh *os.File, size int64, populate bool) (data []byte, unmap func() error, err error) {
	if size == 0 {
		return nil, func() error { return nil }, nil
	}
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("file of %d bytes is too large to map", size)
	}
	flags := syscall.MAP_SHARED
	if populate {
		flags |= mapPopulate
	}
	data, err = syscall.Mmap(int(fh.Fd()), 0, int(size), syscall.PROT_READ, flags)
	if err != nil {
		return nil, nil, fmt.Errorf("map %s: %w", fh.Name(), err)
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
