package ociimage

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// maxDocument bounds the JSON documents Open reads into memory.
const maxDocument = 4 << 20

// Tarball is an image-layout tarball opened by [Open], its documents
// checked against their digests.
type Tarball struct {
	f       *os.File
	entries map[string]section

	// Digest is the manifest's digest, as [Write] returned it.
	Digest   string
	Index    Index
	Manifest Manifest
	Config   ImageConfig
	// Docker is manifest.json.
	Docker []DockerManifest
}

// section is where an entry's contents lie in the tarball.
type section struct{ off, size int64 }

// Open reads the tarball name and checks it: oci-layout's version;
// index.json names one manifest; every blob has the digest and size that
// its descriptor gives; the layers' uncompressed digests are the config's
// diff IDs; and manifest.json names the same config and layers in the same
// order. It reports every problem it finds at once.
func Open(name string) (*Tarball, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	t := &Tarball{f: f, entries: map[string]section{}}
	if err := t.scan(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := t.check(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// Close closes the tarball's file.
func (t *Tarball) Close() error { return t.f.Close() }

// scan lists the tarball's regular files with their offsets.
func (t *Tarball) scan() error {
	cr := &countReader{r: t.f}
	return EachEntry(cr, func(h *tar.Header, _ io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		name := path.Clean(h.Name)
		if _, ok := t.entries[name]; ok {
			return fmt.Errorf("%s: listed twice", name)
		}
		// tar.Reader reads a regular file's header and nothing beyond it,
		// so the count is where its contents start.
		t.entries[name] = section{cr.n, h.Size}
		return nil
	})
}

// EachEntry calls fn with each entry of the tar stream r, in order, and
// a reader of its contents (valid until fn returns); it stops at the
// first error, fn's or the stream's.
func EachEntry(r io.Reader, fn func(*tar.Header, io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// open returns a reader of the entry name.
func (t *Tarball) open(name string) (*io.SectionReader, error) {
	s, ok := t.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: missing", name)
	}
	return io.NewSectionReader(t.f, s.off, s.size), nil
}

func (t *Tarball) document(name string) ([]byte, error) {
	r, err := t.open(name)
	if err != nil {
		return nil, err
	}
	if r.Size() > maxDocument {
		return nil, fmt.Errorf("%s: %d bytes, more than a document's %d", name, r.Size(), maxDocument)
	}
	return io.ReadAll(r)
}

// blob reads the small blob d names and checks its digest and size.
func (t *Tarball) blob(d Descriptor) ([]byte, error) {
	data, err := t.document(blobPath(d.Digest))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, the descriptor says %d", d.Digest, len(data), d.Size)
	}
	if got := digestOf(data); got != d.Digest {
		return nil, fmt.Errorf("blob %s: its digest is %s", d.Digest, got)
	}
	return data, nil
}

func (t *Tarball) check() error {
	layout, err := t.document("oci-layout")
	if err != nil {
		return err
	}
	var lv struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(layout, &lv); err != nil || lv.ImageLayoutVersion != "1.0.0" {
		return fmt.Errorf("oci-layout: want imageLayoutVersion 1.0.0, have %q (%v)", layout, err)
	}
	index, err := t.document("index.json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(index, &t.Index); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	if len(t.Index.Manifests) != 1 || t.Index.Manifests[0].MediaType != MediaTypeManifest {
		return fmt.Errorf("index.json: want one image manifest, have %d: %s", len(t.Index.Manifests), index)
	}
	md := t.Index.Manifests[0]
	manJSON, err := t.blob(md)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	t.Digest = md.Digest
	if err := json.Unmarshal(manJSON, &t.Manifest); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if t.Manifest.MediaType != MediaTypeManifest || t.Manifest.Config.MediaType != MediaTypeConfig {
		return fmt.Errorf("manifest: media types %q and config %q", t.Manifest.MediaType, t.Manifest.Config.MediaType)
	}
	cfgJSON, err := t.blob(t.Manifest.Config)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := json.Unmarshal(cfgJSON, &t.Config); err != nil {
		return fmt.Errorf("config: %w", err)
	}

	var errs []error
	if len(t.Config.RootFS.DiffIDs) != len(t.Manifest.Layers) {
		errs = append(errs, fmt.Errorf("config: %d diff IDs for %d layers", len(t.Config.RootFS.DiffIDs), len(t.Manifest.Layers)))
	}
	for i, l := range t.Manifest.Layers {
		diffID, err := t.checkLayer(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("layer %d: %w", i+1, err))
			continue
		}
		if i < len(t.Config.RootFS.DiffIDs) && diffID != t.Config.RootFS.DiffIDs[i] {
			errs = append(errs, fmt.Errorf("layer %d: uncompressed digest %s, the config's diff ID is %s", i+1, diffID, t.Config.RootFS.DiffIDs[i]))
		}
	}

	docker, err := t.document("manifest.json")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := json.Unmarshal(docker, &t.Docker); err != nil {
		return errors.Join(append(errs, fmt.Errorf("manifest.json: %w", err))...)
	}
	want := DockerManifest{Config: blobPath(t.Manifest.Config.Digest)}
	for _, l := range t.Manifest.Layers {
		want.Layers = append(want.Layers, blobPath(l.Digest))
	}
	if len(t.Docker) != 1 || t.Docker[0].Config != want.Config || !slices.Equal(t.Docker[0].Layers, want.Layers) {
		errs = append(errs, fmt.Errorf("manifest.json: %s does not name the OCI manifest's config %s and layers %v", docker, want.Config, want.Layers))
	}
	return errors.Join(errs...)
}

// checkLayer checks a layer blob's digest and size and returns the digest
// of its uncompressed tar.
func (t *Tarball) checkLayer(d Descriptor) (string, error) {
	if d.MediaType != MediaTypeLayer {
		return "", fmt.Errorf("media type %q, want %q", d.MediaType, MediaTypeLayer)
	}
	r, err := t.open(blobPath(d.Digest))
	if err != nil {
		return "", err
	}
	if r.Size() != d.Size {
		return "", fmt.Errorf("blob %s: %d bytes, the descriptor says %d", d.Digest, r.Size(), d.Size)
	}
	blob := sha256.New()
	gz, err := gzip.NewReader(io.TeeReader(r, blob))
	if err != nil {
		return "", fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	diff := sha256.New()
	if _, err := io.Copy(diff, gz); err != nil {
		return "", fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if _, err := io.Copy(blob, r); err != nil { // anything after the gzip stream
		return "", err
	}
	if got := hashDigest(blob); got != d.Digest {
		return "", fmt.Errorf("blob %s: its digest is %s", d.Digest, got)
	}
	return hashDigest(diff), nil
}

// LayerEntry is one entry of a layer, as [Tarball.Layer] lists it.
type LayerEntry struct {
	Header *tar.Header
	// Data holds a regular file's contents.
	Data []byte
}

// Layer lists the entries of layer i (0 the first), with the contents of
// regular files up to maxData bytes each (longer ones have nil Data).
func (t *Tarball) Layer(i int, maxData int64) ([]LayerEntry, error) {
	var out []LayerEntry
	err := t.walkLayer(i, func(h *tar.Header, r io.Reader) error {
		e := LayerEntry{Header: h}
		if h.Typeflag == tar.TypeReg && h.Size <= maxData {
			data, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			e.Data = data
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

func (t *Tarball) walkLayer(i int, fn func(*tar.Header, io.Reader) error) error {
	if i < 0 || i >= len(t.Manifest.Layers) {
		return fmt.Errorf("no layer %d of %d", i, len(t.Manifest.Layers))
	}
	r, err := t.open(blobPath(t.Manifest.Layers[i].Digest))
	if err != nil {
		return err
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	return EachEntry(gz, func(h *tar.Header, r io.Reader) error {
		if err := fn(h, r); err != nil {
			return fmt.Errorf("layer %d: %s: %w", i+1, h.Name, err)
		}
		return nil
	})
}

// Extract unpacks the layers, in order, into the directory dir (which
// must exist), confined to it: no entry or link leads outside. Regular
// files, directories, symbolic and hard links are made with their modes;
// when the process runs as root they also get their owners. A whiteout
// (.wh.NAME) removes NAME.
func (t *Tarball) Extract(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	asRoot := os.Geteuid() == 0
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	for i := range t.Manifest.Layers {
		err := t.walkLayer(i, func(h *tar.Header, r io.Reader) error {
			name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
			if name == "" {
				return nil
			}
			if base := path.Base(name); strings.HasPrefix(base, ".wh.") {
				return root.RemoveAll(path.Join(path.Dir(name), strings.TrimPrefix(base, ".wh.")))
			}
			mode := fs.FileMode(h.Mode).Perm()
			if h.Mode&0o4000 != 0 {
				mode |= fs.ModeSetuid
			}
			if h.Mode&0o2000 != 0 {
				mode |= fs.ModeSetgid
			}
			if h.Mode&0o1000 != 0 {
				mode |= fs.ModeSticky
			}
			switch h.Typeflag {
			case tar.TypeDir:
				if err := root.MkdirAll(name, 0o755); err != nil {
					return err
				}
				dirs = append(dirs, dirMode{name, mode})
			case tar.TypeReg:
				if err := root.RemoveAll(name); err != nil {
					return err
				}
				out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return err
				}
				_, err = io.Copy(out, r)
				if cerr := out.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				if err := root.Chmod(name, mode); err != nil {
					return err
				}
			case tar.TypeSymlink:
				if err := root.RemoveAll(name); err != nil {
					return err
				}
				if err := root.Symlink(h.Linkname, name); err != nil {
					return err
				}
			case tar.TypeLink:
				if err := root.RemoveAll(name); err != nil {
					return err
				}
				target := strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")
				if err := root.Link(target, name); err != nil {
					return err
				}
			default:
				return fmt.Errorf("entry type %q is not extracted", h.Typeflag)
			}
			if asRoot {
				return root.Lchown(name, h.Uid, h.Gid)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// Directory modes last, so that a read-only directory was writable
	// while its entries were made.
	for _, d := range slices.Backward(dirs) {
		if err := root.Chmod(d.name, d.mode); err != nil {
			return err
		}
	}
	return nil
}
