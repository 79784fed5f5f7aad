//go:build !unix

package server

import (
	"io"
	"os"
)

// mapFile reads the whole file where memory maps are not available.
func mapFile(fh *os.File, _ bool) (data []byte, unmap func() error, err error) {
	data, err = io.ReadAll(fh)
	return data, func() error { return nil }, err
}
