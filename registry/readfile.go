package registry

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxFileBytes is the largest quiver.yaml or definition file a repository
// may hold (8 MiB). A definition file is text that people review: anything
// larger is a mistake (or an attack), and is refused before it is read.
const MaxFileBytes = 8 << 20

// readRepoFile reads the repository file at path, named rel in errors. It
// reads only a regular file (a symbolic link is followed to one), and at
// most MaxFileBytes of it: a named pipe would block the load forever and a
// device such as /dev/zero would never end, so both are refused with an
// *Error naming the file. Other failures are returned as they are.
func readRepoFile(ctx context.Context, path, rel string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(rel, fi); err != nil {
		return nil, err
	}
	// O_NONBLOCK: should the file be swapped for a named pipe between the
	// Stat and the Open, the Open returns at once instead of waiting for a
	// writer, and the check on the opened file below refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close() // read-only: Close has nothing to report
	fi, err = f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkRegular(rel, fi); err != nil {
		return nil, err
	}
	// One byte past the cap tells a file that grew since Stat.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	if len(data) > MaxFileBytes {
		return nil, tooLarge(rel, int64(len(data)))
	}
	return data, nil
}

// checkRegular refuses anything but a regular file of at most MaxFileBytes.
func checkRegular(rel string, fi fs.FileInfo) error {
	m := fi.Mode()
	if m.IsRegular() {
		if fi.Size() > MaxFileBytes {
			return tooLarge(rel, fi.Size())
		}
		return nil
	}
	what := "not a regular file"
	switch {
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a device"
	}
	return &Error{Pos: Position{File: rel}, Msg: fmt.Sprintf("is %s, not a regular file: repository files must be regular files (or symbolic links to them)", what)}
}

func tooLarge(rel string, size int64) error {
	more := ""
	if size > MaxFileBytes+1 {
		more = fmt.Sprintf(" (%d bytes)", size)
	}
	return &Error{Pos: Position{File: rel}, Msg: fmt.Sprintf("is larger than the %d MiB limit for a repository file%s; split it into several files", MaxFileBytes>>20, more)}
}
