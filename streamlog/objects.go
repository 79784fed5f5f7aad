package streamlog

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
)

// The log on object storage keeps the local log's layout, names and
// manifests, as keys below the data root's prefix. Its commit protocol
// differs where an object store offers other guarantees than a file
// system: Put publishes an object only once it is complete (no temporary
// names, no directory syncs), and PutIfAbsent creates a manifest only if
// its key is free, so two writers of one batch name can never both
// commit it. Data objects carry a random tag in their names, so that the
// writer that loses a commit removes only its own objects.

// ErrCommitted: another writer committed a batch of the same name (the
// same stream partition and offsets) first. The batch is in the log
// once, as the other writer logged it.
var ErrCommitted = errors.New("quiver: stream log batch already committed")

// OpenStore returns the log of a view whose source declares fields, below
// dataRoot: a local path (as Open) or an s3:// URI, whose bucket st
// opens. On object storage it lists the view's manifests once, so a
// missing bucket or refused credentials are reported here.
func OpenStore(ctx context.Context, st *storage.Store, dataRoot, view string, fields []*registry.Field) (*Log, error) {
	if !isObjectRoot(dataRoot) {
		return Open(dataRoot, view, fields)
	}
	b, prefix, err := viewPrefix(ctx, st, dataRoot, view)
	if err != nil {
		return nil, err
	}
	l, err := newLog(view, fields)
	if err != nil {
		return nil, err
	}
	l.bucket, l.prefix = b, prefix
	if _, err := b.List(ctx, prefix+manifestDir+"/"); err != nil {
		return nil, fmt.Errorf("stream log of view %s: %w", view, err)
	}
	return l, nil
}

// isObjectRoot reports whether a data root is an object-storage URI.
func isObjectRoot(dataRoot string) bool {
	return strings.HasPrefix(strings.ToLower(dataRoot), storage.SchemeS3+"://")
}

// viewPrefix opens the bucket of an object-storage data root and returns
// the key prefix of a view's log, ending in "/".
func viewPrefix(ctx context.Context, st *storage.Store, dataRoot, view string) (storage.Bucket, string, error) {
	if st == nil {
		return nil, "", fmt.Errorf("stream log of view %s: %s is on object storage, and no storage settings were given", view, dataRoot)
	}
	b, key, err := st.Open(ctx, dataRoot)
	if err != nil {
		return nil, "", fmt.Errorf("stream log of view %s: %w", view, err)
	}
	key = strings.TrimSuffix(key, "/")
	if key != "" {
		key += "/"
	}
	return b, key + Dir + "/" + view + "/", nil
}

// ctx bounds nothing: the store's own timeouts and retries bound every
// request of a writer (Prepare and Commit take no context).
func background() context.Context { return context.Background() }

// prepareObjects writes a batch's data objects, one per date, each by one
// Put that publishes it complete.
func (l *Log) prepareObjects(p *Prepared, events []Event, dates []string, byDate map[string][]int) (*Prepared, error) {
	var tag [4]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return nil, err
	}
	for i, d := range dates {
		rel := path.Join(d, fmt.Sprintf("%s-%d-%s.parquet", p.m.Batch, i, hex.EncodeToString(tag[:])))
		f, err := l.putFile(rel, events, byDate[d])
		if err != nil {
			_ = p.Abort() // the write error is the one to report
			return nil, fmt.Errorf("stream log of view %s: %w", l.view, err)
		}
		p.m.Files = append(p.m.Files, f)
		p.paths = append(p.paths, l.prefix+rel)
	}
	return p, nil
}

// putFile encodes the events at rows and stores them as the object rel.
func (l *Log) putFile(rel string, events []Event, rows []int) (File, error) {
	rec, out, err := l.record(rel, events, rows)
	if err != nil {
		return out, err
	}
	defer rec.Release()
	var buf bytes.Buffer
	if err := l.encode(&buf, rec); err != nil {
		return out, err
	}
	_, err = l.bucket.Put(background(), l.prefix+rel, &buf)
	return out, err
}

// commitObject creates the manifest object, the commit point. A create
// whose answer was lost may have succeeded (and a retry of it then finds
// the key taken): the manifest there is read back, and it is this
// batch's when it holds exactly data (its commit time is this writer's).
func (p *Prepared) commitObject(data []byte) (*Manifest, error) {
	l, m := p.l, p.m
	key := l.prefix + manifestDir + "/" + m.Batch + ".json"
	_, err := l.bucket.PutIfAbsent(background(), key, data)
	if err == nil {
		p.paths = nil
		return m, nil
	}
	mine, readErr := l.holds(key, data)
	switch {
	case readErr == nil && mine:
		p.paths = nil
		return m, nil
	case errors.Is(err, storage.ErrExist) && readErr == nil:
		// Another writer's: Abort removes this one's objects.
		return nil, fmt.Errorf("stream log of view %s: manifest %s: %w (%w)", l.view, m.Batch, ErrCommitted, err)
	case errors.Is(readErr, storage.ErrNotFound):
		return nil, fmt.Errorf("stream log of view %s: manifest: %w", l.view, err)
	}
	// Whether the manifest was created is unknown: leave the objects,
	// which Recover removes if no manifest names them.
	p.paths = nil
	return nil, fmt.Errorf("stream log of view %s: manifest: %w", l.view, err)
}

// holds reports whether the object at key holds data.
func (l *Log) holds(key string, data []byte) (bool, error) {
	got, err := readObject(background(), l.bucket, key)
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, data), nil
}

func readObject(ctx context.Context, b storage.Bucket, key string) ([]byte, error) {
	obj, err := b.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(obj)
	if cerr := obj.Close(); err == nil {
		err = cerr
	}
	return data, err
}

// abortObjects deletes the data objects of an uncommitted batch.
func (p *Prepared) abortObjects() error {
	var errs []error
	for _, key := range p.paths {
		if err := p.l.bucket.Delete(background(), key); err != nil {
			errs = append(errs, err)
		}
	}
	p.paths = nil
	return errors.Join(errs...)
}

// manifestsIn reads the manifests below a view's prefix, in key order.
func manifestsIn(ctx context.Context, b storage.Bucket, prefix, view string) ([]*Manifest, error) {
	objs, err := b.List(ctx, prefix+manifestDir+"/")
	if err != nil {
		return nil, fmt.Errorf("stream log of view %s: %w", view, err)
	}
	var keys, names []string
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, prefix+manifestDir+"/")
		if strings.Contains(name, "/") || !strings.HasSuffix(name, ".json") {
			continue
		}
		keys, names = append(keys, o.Key), append(names, name)
	}
	// One GET per manifest, manifestReads at once; the first error in
	// key order is reported.
	out := make([]*Manifest, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, manifestReads)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			data, err := readObject(ctx, b, keys[i])
			if err == nil {
				out[i], err = decodeManifest(names[i], data)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("stream log of view %s: %w", view, err)
		}
	}
	return out, nil
}

// manifestReads is how many manifests a reader fetches at once.
const manifestReads = 8

// ReadManifests returns a view's committed manifests in batch-name order,
// below a local data root (as Manifests) or an s3:// one, whose bucket st
// opens.
func ReadManifests(ctx context.Context, st *storage.Store, dataRoot, view string) ([]*Manifest, error) {
	if !isObjectRoot(dataRoot) {
		return Manifests(dataRoot, view)
	}
	b, prefix, err := viewPrefix(ctx, st, dataRoot, view)
	if err != nil {
		return nil, err
	}
	return manifestsIn(ctx, b, prefix, view)
}

// Objects returns the bucket of a view's log on object storage and its
// committed data objects, in the log's source order (the lexical order of
// their keys, as Files). It lists the view's objects once, so every
// object comes with the version a reader is to fetch; a manifest naming
// an object that is not there is an error. A view nothing was logged for
// has none.
func Objects(ctx context.Context, st *storage.Store, dataRoot, view string) (storage.Bucket, []storage.ObjectInfo, error) {
	if !isObjectRoot(dataRoot) {
		return nil, nil, checkObjectRoot(dataRoot, view)
	}
	b, prefix, err := viewPrefix(ctx, st, dataRoot, view)
	if err != nil {
		return nil, nil, err
	}
	ms, err := manifestsIn(ctx, b, prefix, view)
	if err != nil || len(ms) == 0 {
		return b, nil, err
	}
	listed, err := b.List(ctx, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("stream log of view %s: %w", view, err)
	}
	byKey := make(map[string]storage.ObjectInfo, len(listed))
	for _, o := range listed {
		byKey[o.Key] = o
	}
	var out []storage.ObjectInfo
	for _, m := range ms {
		for _, f := range m.Files {
			o, ok := byKey[prefix+f.Path]
			if !ok {
				return nil, nil, fmt.Errorf("stream log of view %s: manifest %s names %s, which is missing: %w", view, m.Batch, b.URI(prefix+f.Path), storage.ErrNotFound)
			}
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b storage.ObjectInfo) int { return cmp.Compare(a.Key, b.Key) })
	return b, out, nil
}

func checkObjectRoot(dataRoot, view string) error {
	return fmt.Errorf("stream log of view %s: %s is a local data root; read it with Files", view, dataRoot)
}

// recoverObjects deletes the data objects no manifest names, when they
// are older than grace. Uploads that never completed are not objects and
// are not listed; the bucket's lifecycle rules remove those.
func (l *Log) recoverObjects(grace time.Duration) (removed int, err error) {
	ctx := background()
	ms, err := manifestsIn(ctx, l.bucket, l.prefix, l.view)
	if err != nil {
		return 0, err
	}
	named := map[string]bool{}
	for _, m := range ms {
		for _, f := range m.Files {
			named[l.prefix+f.Path] = true
		}
	}
	objs, err := l.bucket.List(ctx, l.prefix)
	if err != nil {
		return 0, fmt.Errorf("recover stream log of view %s: %w", l.view, err)
	}
	cutoff := time.Now().Add(-grace)
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".parquet") || named[o.Key] || strings.HasPrefix(o.Key, l.prefix+manifestDir+"/") || o.ModTime.After(cutoff) {
			continue
		}
		if err := l.bucket.Delete(ctx, o.Key); err != nil {
			return removed, fmt.Errorf("recover stream log of view %s: %w", l.view, err)
		}
		removed++
	}
	return removed, nil
}
