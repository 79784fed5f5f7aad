package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/quiverdata/quiver/storage"
)

// snapshotFormat is the version of the snapshot encoding.
const snapshotFormat = 1

// Snapshot is one applied, immutable version of a project's definitions.
type Snapshot struct {
	Format  int    `json:"format"`
	Project string `json:"project"`
	Version int64  `json:"version"`
	// Hash is the content hash of Defs: "sha256:" and 64 hex digits.
	Hash string `json:"hash"`
	// Commit is the Git commit of the repository when applied from a Git
	// work tree; Dirty says whether the tree had uncommitted changes.
	Commit    string       `json:"commit,omitempty"`
	Dirty     bool         `json:"dirty,omitempty"`
	Author    string       `json:"author,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	Defs      *Definitions `json:"definitions"`
}

// Info is a snapshot's header, as history lists it.
type Info struct {
	Version   int64     `json:"version"`
	Hash      string    `json:"hash"`
	Commit    string    `json:"commit,omitempty"`
	Dirty     bool      `json:"dirty,omitempty"`
	Author    string    `json:"author,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Info returns the snapshot's header.
func (s *Snapshot) Info() Info {
	return Info{Version: s.Version, Hash: s.Hash, Commit: s.Commit, Dirty: s.Dirty, Author: s.Author, CreatedAt: s.CreatedAt}
}

// canonicalJSON encodes v deterministically: struct fields in declaration
// order, map keys sorted, no HTML escaping.
func canonicalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Hash returns the content hash of the definitions. Equal definitions hash
// equally wherever and whenever they were loaded.
func (d *Definitions) Hash() (string, error) {
	b, err := canonicalJSON(d)
	if err != nil {
		return "", fmt.Errorf("encode definitions: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func encodeSnapshot(s *Snapshot) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeSnapshot decodes and verifies a stored snapshot.
func decodeSnapshot(version int64, data []byte) (*Snapshot, error) {
	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("registry version %d is unreadable: %w", version, err)
	}
	if s.Format != snapshotFormat {
		return nil, fmt.Errorf("registry version %d has format %d; this quiver reads format %d (upgrade quiver)", version, s.Format, snapshotFormat)
	}
	if s.Version != version {
		return nil, fmt.Errorf("registry version %d is corrupt: it says it is version %d", version, s.Version)
	}
	if s.Defs == nil {
		return nil, fmt.Errorf("registry version %d is corrupt: no definitions", version)
	}
	h, err := s.Defs.Hash()
	if err != nil {
		return nil, err
	}
	if h != s.Hash {
		return nil, fmt.Errorf("registry version %d is corrupt: content hash %s does not match the recorded %s", version, h, s.Hash)
	}
	return &s, nil
}

// Backend stores encoded snapshots by version: DirBackend in a local
// directory, ObjectBackend in an object store (a conditional put for
// Create).
type Backend interface {
	// Versions returns the stored versions in ascending order.
	Versions(ctx context.Context) ([]int64, error)
	// Read returns the bytes of version v, or an error wrapping
	// ErrVersionNotFound.
	Read(ctx context.Context, v int64) ([]byte, error)
	// Create stores data as version v. It is atomic (no reader sees part
	// of it) and exclusive: if v exists it returns an error wrapping
	// ErrVersionExists and changes nothing.
	Create(ctx context.Context, v int64, data []byte) error
}

// Locator is implemented by a Backend that can name where it keeps a
// version; the Store's errors about a stored version then name it.
type Locator interface {
	// Location returns the address of version v, for messages.
	Location(v int64) string
}

// Store is a project's versioned registry over a Backend. It is safe for
// concurrent use, also by several processes sharing one backend.
type Store struct {
	backend Backend
}

// NewStore returns a Store over b.
func NewStore(b Backend) *Store { return &Store{backend: b} }

// OpenStore opens the registry at location:
//
//   - a local directory path, or a file:// URL: a DirBackend;
//   - s3://bucket/prefix: an ObjectBackend over that bucket and prefix
//     (s3://bucket for the bucket's root), opened with sc's S3 options
//     and credentials from the AWS chain (storage.Config).
//
// It makes no request: a missing bucket or a refused credential shows in
// the first read or apply. Errors name the location, never a credential.
func OpenStore(ctx context.Context, location string, sc storage.Config) (*Store, error) {
	b, err := openBackend(ctx, location, sc)
	if err != nil {
		return nil, err
	}
	return NewStore(b), nil
}

func openBackend(ctx context.Context, location string, sc storage.Config) (Backend, error) {
	scheme, _, hasScheme := strings.Cut(location, "://")
	switch {
	case location == "":
		return nil, errors.New("registry location is empty")
	case strings.HasPrefix(location, "file://"):
		return NewDirBackend(strings.TrimPrefix(location, "file://")), nil
	case hasScheme && strings.EqualFold(scheme, storage.SchemeS3):
		u, err := storage.ParseURI(location)
		if err != nil {
			return nil, fmt.Errorf("registry %q: %w", location, err)
		}
		bucket, prefix, err := storage.NewStore(sc).OpenURI(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("open registry %s: %w", location, err)
		}
		return NewObjectBackend(bucket, prefix), nil
	case hasScheme:
		return nil, fmt.Errorf("registry %q: %s:// registries are not supported; use a directory or s3://bucket/prefix", location, scheme)
	}
	return NewDirBackend(location), nil
}

// LatestVersion returns the newest version number, or 0 when none exists.
func (s *Store) LatestVersion(ctx context.Context) (int64, error) {
	vs, err := s.backend.Versions(ctx)
	if err != nil {
		return 0, fmt.Errorf("list registry versions: %w", err)
	}
	if len(vs) == 0 {
		return 0, nil
	}
	return vs[len(vs)-1], nil
}

// Latest returns the newest snapshot, or ErrNoSnapshot.
func (s *Store) Latest(ctx context.Context) (*Snapshot, error) {
	v, err := s.LatestVersion(ctx)
	if err != nil {
		return nil, err
	}
	if v == 0 {
		return nil, ErrNoSnapshot
	}
	return s.Get(ctx, v)
}

// Get returns snapshot version v.
func (s *Store) Get(ctx context.Context, v int64) (*Snapshot, error) {
	data, err := s.backend.Read(ctx, v)
	if err != nil {
		return nil, err
	}
	snap, err := decodeSnapshot(v, data)
	if l, ok := s.backend.(Locator); ok && err != nil {
		return nil, fmt.Errorf("read %s: %w", l.Location(v), err)
	}
	return snap, err
}

// History returns every version's header, oldest first.
func (s *Store) History(ctx context.Context) ([]Info, error) {
	vs, err := s.backend.Versions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list registry versions: %w", err)
	}
	out := make([]Info, 0, len(vs))
	for _, v := range vs {
		snap, err := s.Get(ctx, v)
		if err != nil {
			return nil, err
		}
		out = append(out, snap.Info())
	}
	return out, nil
}

// ApplyOptions describe an apply.
type ApplyOptions struct {
	Commit string
	Dirty  bool
	Author string
	// AllowBreaking applies a plan with breaking changes; without it Apply
	// returns ErrBreaking and writes nothing.
	AllowBreaking bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	// Plan is the diff from the previous latest version to defs.
	Plan *Plan
	// Snapshot is the new version, or the unchanged latest one.
	Snapshot *Snapshot
	// Written is false when defs equal the latest version's.
	Written bool
}

// Apply writes defs as the next version unless they equal the latest
// version's. Concurrent applies each get their own version: when another
// apply takes the version first, Apply plans again on top of it, read by
// its number when the backend's listing does not show it yet (an object
// store whose listings lag behind its writes).
func (s *Store) Apply(ctx context.Context, defs *Definitions, opts ApplyOptions) (*ApplyResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	hash, err := defs.Hash()
	if err != nil {
		return nil, err
	}
	var taken int64 // the newest version another apply was seen to take
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		latest, err := s.Latest(ctx)
		if err != nil && !errors.Is(err, ErrNoSnapshot) {
			return nil, err
		}
		if taken > 0 && (latest == nil || latest.Version < taken) {
			if latest, err = s.Get(ctx, taken); err != nil {
				return nil, fmt.Errorf("read registry version %d, which another apply wrote: %w", taken, err)
			}
		}
		var prev *Definitions
		var next int64 = 1
		if latest != nil {
			prev, next = latest.Defs, latest.Version+1
		}
		plan := Diff(prev, defs)
		if latest != nil {
			plan.FromVersion = latest.Version
		}
		if latest != nil && latest.Hash == hash {
			return &ApplyResult{Plan: plan, Snapshot: latest}, nil
		}
		if plan.Breaking() && !opts.AllowBreaking {
			return &ApplyResult{Plan: plan}, ErrBreaking
		}
		snap := &Snapshot{
			Format: snapshotFormat, Project: defs.Project, Version: next, Hash: hash,
			Commit: opts.Commit, Dirty: opts.Dirty, Author: opts.Author,
			CreatedAt: opts.Now().UTC().Truncate(time.Millisecond), Defs: defs,
		}
		data, err := encodeSnapshot(snap)
		if err != nil {
			return nil, err
		}
		err = s.backend.Create(ctx, next, data)
		if errors.Is(err, ErrVersionExists) {
			taken = next
			continue // another apply won this version; plan again on top of it
		}
		if err != nil {
			return nil, fmt.Errorf("write registry version %d: %w", next, err)
		}
		plan.ToVersion = next
		return &ApplyResult{Plan: plan, Snapshot: snap, Written: true}, nil
	}
}
