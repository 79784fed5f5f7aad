//go:build !unix

package server

import (
	"io"
	"os"
)

// mapFile reads the whole file where memory maps are not available.
func mapFile(fh *os.File, size int64, _ bool) (data []byte, unmap func() error, err error) {
	data = make([]byte, size)
	_, err = io.ReadFull(fh, data)
	return data, func() error { return nil }, err
}
