//go:build unix

package mmapfile

import (
	"fmt"
	"os"
	"syscall"
)

// Map maps a file read-only into memory, faulted in at once when
// populate (where the system can); unmap releases it.
//
// The mapping is shared: a file truncated while mapped raises SIGBUS on a
// read past its new end, which a reader must turn into an error
// (debug.SetPanicOnFault).
func Map(fh *os.File, size int64, populate bool) (data []byte, unmap func() error, err error) {
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

// Drop tells the system that the mapped pages of data[:end] will not be
// read again soon, so that they leave the process's resident memory (the
// page cache keeps them); a later read faults them back in.
func Drop(data []byte, end int) {
	end -= end % os.Getpagesize()
	if end <= 0 {
		return
	}
	_ = syscall.Madvise(data[:end], syscall.MADV_DONTNEED) // advice only
}
