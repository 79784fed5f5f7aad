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
func mapFile(fh *os.File, populate bool) (data []byte, unmap func() error, err error) {
	st, err := fh.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, func() error { return nil }, nil
	}
	if int64(int(st.Size())) != st.Size() {
		return nil, nil, fmt.Errorf("file of %d bytes is too large to map", st.Size())
	}
	flags := syscall.MAP_SHARED
	if populate {
		flags |= mapPopulate
	}
	data, err = syscall.Mmap(int(fh.Fd()), 0, int(st.Size()), syscall.PROT_READ, flags)
	if err != nil {
		return nil, nil, fmt.Errorf("map %s: %w", fh.Name(), err)
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
