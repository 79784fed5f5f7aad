// Package durable writes files so that a crash leaves either the old
// content or the whole new file under a name, never a part of one.
//
// A durable write goes through a temporary file in the same directory as
// its target: the file is written, synced, renamed over the target (or
// hard-linked to it, for an exclusive create), and the directory is synced
// so that the new name survives a crash too. On any failure the temporary
// file is removed and the error names the target.
//
// Temporary names are path + "." + <process id> + "-" + <sequence> +
// ".tmp": unique per process and per call, created exclusively, so that
// concurrent writers of one path never share a temporary file, and
// leftovers of a crash can be found by their ".tmp" suffix.
//
// Every function is safe for concurrent use.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
)

// TempSuffix ends every temporary name this package makes.
const TempSuffix = ".tmp"

// seq keeps apart the temporary names of one process's calls.
var seq atomic.Uint64

// TempName returns a temporary name beside path, unique to this process
// and call, for a writer that creates the file itself (a database's COPY,
// say) before Publish moves it into place.
func TempName(path string) string {
	return path + "." + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(seq.Add(1), 10) + TempSuffix
}

// CreateTemp creates a new temporary file beside path (see TempName), with
// perm before the umask. The name is created exclusively: if it exists
// (another process with the same id on a shared file system), the next
// name is tried.
func CreateTemp(path string, perm fs.FileMode) (*os.File, error) {
	for range 100 {
		f, err := os.OpenFile(TempName(path), os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("create temporary file for %s: every name tried exists", path)
}

// WriteFile writes path durably: write fills a new temporary file beside
// path, which is synced, closed, renamed over path, and path's directory
// is synced. write must not close the file. On any failure the temporary
// file is removed, path keeps its old content (or stays absent), and the
// error names path.
func WriteFile(path string, perm fs.FileMode, write func(f *os.File) error) error {
	if err := WriteFileNoDirSync(path, perm, write); err != nil {
		return err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteFileNoDirSync is WriteFile without the final sync of path's
// directory, for a caller that writes several files into one directory
// and syncs it once (SyncDir) before it relies on their names.
func WriteFileNoDirSync(path string, perm fs.FileMode, write func(f *os.File) error) error {
	tmp, err := writeTemp(path, perm, write)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", path, err), remove(tmp))
	}
	return nil
}

// CreateFile writes path durably and exclusively: like WriteFile, but the
// temporary file is hard-linked to path instead of renamed over it, so
// that the call fails with an error wrapping fs.ErrExist when path exists,
// even when other processes create it concurrently. The temporary file is
// made in tmpDir (beside path when tmpDir is empty) and removed in every
// case; an error removing it after path was created is returned too.
func CreateFile(path, tmpDir string, perm fs.FileMode, write func(f *os.File) error) (err error) {
	base := path
	if tmpDir != "" {
		base = filepath.Join(tmpDir, filepath.Base(path))
	}
	tmp, err := writeTemp(base, perm, write)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("create %s: remove temporary file: %w", path, rerr)
		}
	}()
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// Publish moves a complete file written by someone else into place: it
// syncs tmp, renames it over path and syncs path's directory. On failure
// tmp is removed and the error names path.
func Publish(tmp, path string) error {
	if err := SyncFile(tmp); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", path, err), remove(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", path, err), remove(tmp))
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncFile flushes the file at path to stable storage.
func SyncFile(path string) error {
	if err := syncPath(path); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// SyncDir flushes dir's entries (names created, renamed or removed in it)
// to stable storage.
func SyncDir(dir string) error {
	if err := syncPath(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeTemp writes, syncs and closes a new temporary file beside path and
// returns its name; on failure nothing is left.
func writeTemp(path string, perm fs.FileMode, write func(f *os.File) error) (string, error) {
	f, err := CreateTemp(path, perm)
	if err != nil {
		return "", err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", errors.Join(err, remove(f.Name()))
	}
	return f.Name(), nil
}

// remove removes a temporary file, reporting only a failure that leaves it.
func remove(tmp string) error {
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove temporary file: %w", err)
	}
	return nil
}

// PublishExclusive is Publish for a path that must not exist yet: tmp is
// synced and hard-linked to path, so that the call fails with an error
// wrapping fs.ErrExist when path exists, even when another process
// creates it concurrently; path's directory is synced. tmp is removed in
// every case.
func PublishExclusive(tmp, path string) error {
	if err := SyncFile(tmp); err != nil {
		return errors.Join(fmt.Errorf("create %s: %w", path, err), remove(tmp))
	}
	if err := os.Link(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("create %s: %w", path, err), remove(tmp))
	}
	if err := remove(tmp); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
