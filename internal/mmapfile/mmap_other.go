//go:build !unix

package mmapfile

import (
	"io"
	"os"
)

// Map reads the whole file where memory maps are not available.
func Map(fh *os.File, size int64, _ bool) (data []byte, unmap func() error, err error) {
	data = make([]byte, size)
	_, err = io.ReadFull(fh, data)
	return data, func() error { return nil }, err
}

// Drop does nothing where memory maps are not available.
func Drop([]byte, int) {}
