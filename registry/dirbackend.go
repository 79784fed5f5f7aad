package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/quiverdata/quiver/internal/durable"
)

// DirBackend keeps snapshots as files in a local directory:
//
//	DIR/versions/00000000000000000042.json
//
// Create writes a temporary file in DIR/tmp, syncs it, hard-links it to
// its final name and syncs the directory (durable.CreateFile); the link
// fails if the name exists, which makes Create exclusive across goroutines
// and processes, and atomic for readers.
type DirBackend struct {
	dir string
}

var _ Backend = (*DirBackend)(nil)

// NewDirBackend returns a backend over dir, created on first write.
func NewDirBackend(dir string) *DirBackend { return &DirBackend{dir: dir} }

const versionDigits = 20

func (b *DirBackend) versionPath(v int64) string {
	return filepath.Join(b.dir, "versions", fmt.Sprintf("%0*d.json", versionDigits, v))
}

// Versions implements Backend.
func (b *DirBackend) Versions(ctx context.Context) ([]int64, error) {
	entries, err := os.ReadDir(filepath.Join(b.dir, "versions"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || len(name) != versionDigits {
			continue
		}
		v, err := strconv.ParseInt(name, 10, 64)
		if err != nil || v <= 0 {
			continue
		}
		out = append(out, v) // ReadDir sorts by name; fixed width sorts numerically
	}
	return out, nil
}

// Read implements Backend.
func (b *DirBackend) Read(ctx context.Context, v int64) ([]byte, error) {
	data, err := os.ReadFile(b.versionPath(v))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %d", ErrVersionNotFound, v)
	}
	return data, err
}

// Create implements Backend.
func (b *DirBackend) Create(ctx context.Context, v int64, data []byte) error {
	final := b.versionPath(v)
	tmpDir := filepath.Join(b.dir, "tmp")
	for _, d := range []string{filepath.Dir(final), tmpDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if _, err := os.Stat(final); err == nil {
		return fmt.Errorf("%w: %d", ErrVersionExists, v)
	}
	err := durable.CreateFile(final, tmpDir, 0o644, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %d", ErrVersionExists, v)
	}
	return err
}
