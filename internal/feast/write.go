package feast

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/quiverdata/quiver/internal/durable"
)

// ErrExists is returned by WriteFiles when a file would be overwritten
// without force.
var ErrExists = errors.New("quiver: file exists")

// WriteFiles writes files under dir, creating directories as needed.
// Unless force is set it writes nothing when any of the files exists, and
// returns an error wrapping ErrExists that names them; other files in dir
// are never touched.
func WriteFiles(dir string, files []File, force bool) error {
	if !force {
		var exist []string
		for _, f := range files {
			_, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path)))
			switch {
			case err == nil:
				exist = append(exist, f.Path)
			case !errors.Is(err, fs.ErrNotExist):
				return fmt.Errorf("check %s: %w", f.Path, err)
			}
		}
		if len(exist) > 0 {
			return fmt.Errorf("%w in %s: %s (give --force to overwrite)", ErrExists, dir, strings.Join(exist, ", "))
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		err := durable.WriteFile(p, 0o644, func(w *os.File) error {
			_, err := w.Write(f.Data)
			return err
		})
		if err != nil {
			return err // names the file
		}
	}
	return nil
}
