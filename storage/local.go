package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/quiverdata/quiver/internal/durable"
)

// Local is a Bucket over a directory of the local file system. Writes go
// through internal/durable: a synced temporary file beside the target,
// renamed into place (Put) or hard-linked to it (PutIfAbsent), and the
// directory synced.
//
// Keys cannot leave the root, but symbolic links are not confined: Stat
// and Open follow them, List skips them. A caller that must confine reads
// to a directory (the Flight service's data root) resolves links itself.
type Local struct {
	root string
}

var _ Bucket = (*Local)(nil)

// NewLocal returns a Bucket rooted at dir (made absolute). The directory
// need not exist yet: Put creates the directories a key needs.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, &Error{Op: "open", URI: dir, Err: err}
	}
	return &Local{root: abs}, nil
}

// Root is the bucket's directory.
func (l *Local) Root() string { return l.root }

// URI returns the local path of key.
func (l *Local) URI(key string) string { return filepath.Join(l.root, filepath.FromSlash(key)) }

// filePerm is the mode of files Put creates, before the umask.
const filePerm = 0o644

// path checks key and returns its file.
func (l *Local) path(op, key string) (string, error) {
	if err := checkLocalKey(key); err != nil {
		return "", &Error{Op: op, URI: strings.TrimSuffix(l.root, "/") + "/" + key, Err: err}
	}
	return l.URI(key), nil
}

// checkLocalKey refuses keys that would leave the root or that name no
// file.
func checkLocalKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: an empty key", ErrInvalid)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w: key %q is absolute", ErrInvalid, key)
	case strings.ContainsRune(key, 0) || strings.ContainsRune(key, '\\'):
		return fmt.Errorf("%w: key %q holds a NUL or a backslash", ErrInvalid, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: key %q has an empty, . or .. segment", ErrInvalid, key)
		}
	}
	if tempName.MatchString(key) {
		return fmt.Errorf("%w: key %q has the form of a temporary file", ErrInvalid, key)
	}
	return nil
}

// tempName matches the temporary files of internal/durable, which List
// hides: they are writes not yet published.
var tempName = regexp.MustCompile(`\.[0-9]+-[0-9]+` + regexp.QuoteMeta(durable.TempSuffix) + `$`)

// Stat describes the file at key.
func (l *Local) Stat(_ context.Context, key string) (ObjectInfo, error) {
	p, err := l.path("stat", key)
	if err != nil {
		return ObjectInfo{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return ObjectInfo{}, &Error{Op: "stat", URI: p, Err: l.mapErr(err)}
	}
	if !st.Mode().IsRegular() {
		return ObjectInfo{}, &Error{Op: "stat", URI: p, Err: fmt.Errorf("%w: not a regular file", ErrNotFound)}
	}
	return localInfo(key, st), nil
}

func localInfo(key string, st fs.FileInfo) ObjectInfo {
	etag := strconv.FormatInt(st.Size(), 16) + "-" + strconv.FormatInt(st.ModTime().UnixNano(), 16)
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		etag += "-" + strconv.FormatUint(sys.Ino, 16)
	}
	return ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime(), ETag: etag}
}

// mapErr turns a missing file into ErrNotFound, or ErrBucketNotFound when
// the root itself is missing.
func (l *Local) mapErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		if _, rerr := os.Stat(l.root); errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrBucketNotFound, err)
		}
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// Open opens the file at key.
func (l *Local) Open(_ context.Context, key string) (Object, error) {
	p, err := l.path("open", key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, &Error{Op: "open", URI: p, Err: l.mapErr(err)}
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%w: not a regular file", ErrNotFound)
	}
	if err != nil {
		return nil, errors.Join(&Error{Op: "open", URI: p, Err: err}, f.Close())
	}
	return &localObject{File: f, info: localInfo(key, st)}, nil
}

type localObject struct {
	*os.File
	info ObjectInfo
}

func (o *localObject) Info() ObjectInfo { return o.info }

// List walks the directories under prefix. A prefix ending in "/" lists
// that directory's tree; otherwise the prefix's last segment is matched as
// a name prefix within its directory.
func (l *Local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	return l.list(ctx, prefix, -1)
}

// list is List of the keys with at most maxSlashes slashes (any number
// when maxSlashes < 0).
func (l *Local) list(ctx context.Context, prefix string, maxSlashes int) ([]ObjectInfo, error) {
	dir := prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = prefix[:i]
	} else {
		dir = ""
	}
	if dir != "" {
		if err := checkLocalKey(dir); err != nil {
			return nil, &Error{Op: "list", URI: strings.TrimSuffix(l.root, "/") + "/" + prefix, Err: err}
		}
	}
	start := filepath.Join(l.root, filepath.FromSlash(dir))
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Descend only into directories that can hold a match.
			if p != start && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			if p != start && maxSlashes >= 0 && strings.Count(key, "/")+1 > maxSlashes {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) || tempName.MatchString(key) {
			return nil
		}
		st, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while listing
		}
		if err != nil {
			return err
		}
		out = append(out, localInfo(key, st))
		return nil
	})
	if err != nil {
		return nil, &Error{Op: "list", URI: l.URI(prefix), Err: err}
	}
	if _, err := os.Stat(l.root); errors.Is(err, fs.ErrNotExist) {
		return nil, &Error{Op: "list", URI: l.URI(prefix), Err: fmt.Errorf("%w: %w", ErrBucketNotFound, err)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Put writes r to key durably, creating the directories it needs.
func (l *Local) Put(_ context.Context, key string, r io.Reader) (ObjectInfo, error) {
	p, err := l.path("put", key)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := l.mkdirs(p); err != nil {
		return ObjectInfo{}, &Error{Op: "put", URI: p, Err: err}
	}
	err = durable.WriteFile(p, filePerm, func(f *os.File) error {
		_, err := io.Copy(f, r)
		return err
	})
	if err != nil {
		return ObjectInfo{}, &Error{Op: "put", URI: p, Err: err}
	}
	return l.statAfter("put", key, p)
}

// PutIfAbsent creates key exclusively (a hard link from a synced
// temporary file).
func (l *Local) PutIfAbsent(_ context.Context, key string, data []byte) (ObjectInfo, error) {
	p, err := l.path("create", key)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := l.mkdirs(p); err != nil {
		return ObjectInfo{}, &Error{Op: "create", URI: p, Err: err}
	}
	err = durable.CreateFile(p, "", filePerm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if errors.Is(err, fs.ErrExist) {
		return ObjectInfo{}, &Error{Op: "create", URI: p, Err: ErrExist}
	}
	if err != nil {
		return ObjectInfo{}, &Error{Op: "create", URI: p, Err: err}
	}
	return l.statAfter("create", key, p)
}

func (l *Local) statAfter(op, key, p string) (ObjectInfo, error) {
	st, err := os.Stat(p)
	if err != nil {
		return ObjectInfo{}, &Error{Op: op, URI: p, Err: err}
	}
	return localInfo(key, st), nil
}

// mkdirs creates p's parent directories below the root (which must
// exist: a missing root is ErrBucketNotFound, as a missing S3 bucket is).
func (l *Local) mkdirs(p string) error {
	if st, err := os.Stat(l.root); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return fmt.Errorf("%w: root %s: %w", ErrBucketNotFound, l.root, err)
	}
	return os.MkdirAll(filepath.Dir(p), 0o755)
}

// Delete removes the file at key and syncs its directory.
func (l *Local) Delete(_ context.Context, key string) error {
	p, err := l.path("delete", key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return &Error{Op: "delete", URI: p, Err: err}
	}
	if err := durable.SyncDir(filepath.Dir(p)); err != nil {
		return &Error{Op: "delete", URI: p, Err: err}
	}
	return nil
}

// localKey turns a local path into a key of the bucket rooted at "/".
func localKey(p string) (string, error) {
	abs, err := filepath.Abs(filepath.FromSlash(p))
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(path.Clean(filepath.ToSlash(abs)), "/"), nil
}
