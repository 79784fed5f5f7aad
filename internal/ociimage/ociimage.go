// Package ociimage writes container images as OCI image-layout tarballs,
// with no container daemon and no registry, reproducibly: the same layers,
// config and creation time give the same tarball byte for byte, and so the
// same image digest.
//
// An [Image] is a list of [Layer]s, each a list of [File]s, and a
// [Config]. [Write] turns it into one tar stream holding an OCI image
// layout (oci-layout, index.json, blobs/sha256/…) and, beside it, the
// manifest.json that docker load reads, so that docker load, podman load
// and skopeo copy oci-archive: all take the same file. [Open] reads such a
// tarball back and checks every digest and size, and [Tarball.Extract]
// unpacks its layers into a root filesystem.
//
// What makes a layer reproducible: entries are sorted by path, parent
// directories are added (0755, owned by root) where a layer does not list
// them, every entry has the image's creation time as its modification
// time and no user or group names, and the gzip stream has no name and no
// time in its header. JSON documents are written from structs, and
// labels, the one map, are written in key order by encoding/json.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Media types of the documents and blobs Write produces.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// File is one entry of a layer. Its kind comes from Mode's type bits:
// a directory (fs.ModeDir), a symbolic link (fs.ModeSymlink, to Link), or
// a regular file whose contents are Data, or the file at Source when
// Source is set.
type File struct {
	// Path is the entry's path in the image, with or without a leading
	// slash: "usr/bin/quiver".
	Path string
	// Mode holds the permission bits (fs.ModeSetuid, fs.ModeSetgid and
	// fs.ModeSticky included) and the entry's type.
	Mode fs.FileMode
	// UID and GID own the entry; 0 (root) by default.
	UID, GID int
	// Data is a regular file's contents, unless Source is set.
	Data []byte
	// Source is a file on this machine whose contents are a regular
	// file's, read when the layer is written.
	Source string
	// Link is a symbolic link's target.
	Link string
}

// Layer is one filesystem layer. The order of Files does not matter: Write
// sorts them by path. A path may appear once.
type Layer struct {
	Files []File
	// Comment describes the layer in the image's history ("created_by").
	Comment string
}

// Config is what a container runtime reads from the image: the process it
// starts and the metadata shown about the image.
type Config struct {
	Entrypoint []string
	Cmd        []string
	// Env holds NAME=value pairs, in order.
	Env        []string
	User       string
	WorkingDir string
	// ExposedPorts holds "6566/tcp"-style ports, written in sorted order.
	ExposedPorts []string
	Labels       map[string]string
}

// Image is what Write writes.
type Image struct {
	Layers []Layer
	Config Config
	// Created is the image's creation time and every layer entry's
	// modification time; pass SOURCE_DATE_EPOCH for a reproducible image.
	// Written in UTC, to the second.
	Created time.Time
	// Architecture and OS of the image's binaries; default amd64 and linux.
	Architecture, OS string
	// Name, when set, is the image's reference ("ghcr.io/quiverdata/quiver:v1.2.0"):
	// the tag that docker load gives it and the annotations that
	// containerd and skopeo read in index.json.
	Name string
}

// Descriptor names a blob by digest and size.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Index is an OCI image index, the layout's index.json.
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// DockerManifest is one entry of manifest.json, the file docker load reads.
type DockerManifest struct {
	Config   string
	RepoTags []string `json:",omitempty"`
	Layers   []string
}

// ImageConfig is the OCI image configuration blob.
type ImageConfig struct {
	Created      string          `json:"created"`
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Config       RuntimeConfig   `json:"config"`
	RootFS       RootFS          `json:"rootfs"`
	History      []HistoryRecord `json:"history"`
}

// RuntimeConfig is the "config" object of [ImageConfig].
type RuntimeConfig struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
}

// RootFS lists the layers' uncompressed digests.
type RootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

// HistoryRecord describes one layer.
type HistoryRecord struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by,omitempty"`
}

// Result is what Write wrote.
type Result struct {
	// Digest is the manifest's digest, "sha256:…": the image's identity
	// in a registry and in docker images --digests.
	Digest string
	// Manifest, Config and the layers' descriptors as written.
	Manifest Manifest
	Config   ImageConfig
	// Size is the sum of the blobs' sizes: the image as a registry stores
	// it. Uncompressed is the sum of the layers' tar sizes.
	Size, Uncompressed int64
}

// ociLayout is the layout's version file.
const ociLayout = `{"imageLayoutVersion":"1.0.0"}`

// Write writes img to w as an OCI image-layout tarball with a docker
// manifest.json and returns the image's digest. The layers' compressed
// blobs are held in memory while the tarball is written.
func Write(w io.Writer, img Image) (Result, error) {
	if len(img.Layers) == 0 {
		return Result{}, errors.New("ociimage: an image needs at least one layer")
	}
	if img.Created.IsZero() {
		return Result{}, errors.New("ociimage: no creation time (set it from SOURCE_DATE_EPOCH)")
	}
	created := img.Created.UTC().Truncate(time.Second)
	stamp := created.Format(time.RFC3339)
	arch, goos := img.Architecture, img.OS
	if arch == "" {
		arch = "amd64"
	}
	if goos == "" {
		goos = "linux"
	}

	var res Result
	type blob struct {
		digest string
		data   []byte
	}
	var blobs []blob
	cfg := ImageConfig{
		Created: stamp, Architecture: arch, OS: goos,
		Config: RuntimeConfig{
			User: img.Config.User, Env: img.Config.Env, Entrypoint: img.Config.Entrypoint,
			Cmd: img.Config.Cmd, WorkingDir: img.Config.WorkingDir, Labels: img.Config.Labels,
		},
		RootFS: RootFS{Type: "layers", DiffIDs: []string{}},
	}
	if len(img.Config.ExposedPorts) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range img.Config.ExposedPorts {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	man := Manifest{SchemaVersion: 2, MediaType: MediaTypeManifest}
	for i, l := range img.Layers {
		data, diffID, size, err := writeLayer(l, created)
		if err != nil {
			return Result{}, fmt.Errorf("ociimage: layer %d: %w", i+1, err)
		}
		d := digestOf(data)
		blobs = append(blobs, blob{d, data})
		man.Layers = append(man.Layers, Descriptor{MediaType: MediaTypeLayer, Digest: d, Size: int64(len(data))})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		cfg.History = append(cfg.History, HistoryRecord{Created: stamp, CreatedBy: l.Comment})
		res.Size += int64(len(data))
		res.Uncompressed += size
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return Result{}, err
	}
	man.Config = Descriptor{MediaType: MediaTypeConfig, Digest: digestOf(cfgJSON), Size: int64(len(cfgJSON))}
	blobs = append(blobs, blob{man.Config.Digest, cfgJSON})
	manJSON, err := json.Marshal(man)
	if err != nil {
		return Result{}, err
	}
	res.Digest = digestOf(manJSON)
	blobs = append(blobs, blob{res.Digest, manJSON})
	res.Size += int64(len(cfgJSON)) + int64(len(manJSON))
	res.Manifest, res.Config = man, cfg

	desc := Descriptor{MediaType: MediaTypeManifest, Digest: res.Digest, Size: int64(len(manJSON))}
	var tags []string
	if img.Name != "" {
		desc.Annotations = map[string]string{"io.containerd.image.name": img.Name}
		if tag := refTag(img.Name); tag != "" {
			desc.Annotations["org.opencontainers.image.ref.name"] = tag
		}
		tags = []string{img.Name}
	}
	indexJSON, err := json.Marshal(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{desc}})
	if err != nil {
		return Result{}, err
	}
	dm := DockerManifest{Config: blobPath(man.Config.Digest), RepoTags: tags}
	for _, l := range man.Layers {
		dm.Layers = append(dm.Layers, blobPath(l.Digest))
	}
	dockerJSON, err := json.Marshal([]DockerManifest{dm})
	if err != nil {
		return Result{}, err
	}

	// The tarball: the small documents first, then the blobs in digest
	// order (each once, should two layers be equal).
	slices.SortFunc(blobs, func(a, b blob) int { return strings.Compare(a.digest, b.digest) })
	blobs = slices.CompactFunc(blobs, func(a, b blob) bool { return a.digest == b.digest })
	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(header(name, tar.TypeReg, 0o644, int64(len(data)), created)); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(ociLayout)); err != nil {
		return Result{}, err
	}
	if err := put("index.json", indexJSON); err != nil {
		return Result{}, err
	}
	if err := put("manifest.json", dockerJSON); err != nil {
		return Result{}, err
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(header(dir, tar.TypeDir, 0o755, 0, created)); err != nil {
			return Result{}, err
		}
	}
	for _, b := range blobs {
		if err := put(blobPath(b.digest), b.data); err != nil {
			return Result{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// WriteFile writes img to the file name (through a temporary file beside
// it, renamed into place once complete).
func WriteFile(name string, img Image) (Result, error) {
	f, err := os.CreateTemp(filepath.Dir(name), ".ociimage-*")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(f.Name())
	res, err := Write(f, img)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Result{}, err
	}
	return res, os.Rename(f.Name(), name)
}

// refTag is the tag of a reference, "" when it has none.
func refTag(ref string) string {
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[i+1:]
	}
	return ""
}

func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// header is a tar header with nothing that varies between machines: no
// user or group names and one time. archive/tar chooses the format, USTAR
// unless a field needs PAX records, the same way each time.
func header(name string, typ byte, mode int64, size int64, t time.Time) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: t}
}

// writeLayer returns the layer's gzipped tar, the digest of the tar (its
// diff ID) and the tar's size.
func writeLayer(l Layer, mtime time.Time) ([]byte, string, int64, error) {
	files, err := normalize(l.Files)
	if err != nil {
		return nil, "", 0, err
	}
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, "", 0, err
	}
	// The zero gzip header: no name, no time, OS "unknown".
	diff := sha256.New()
	cw := &countWriter{w: io.MultiWriter(gz, diff)}
	tw := tar.NewWriter(cw)
	for _, f := range files {
		if err := writeEntry(tw, f, mtime); err != nil {
			return nil, "", 0, fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", 0, err
	}
	if err := gz.Close(); err != nil {
		return nil, "", 0, err
	}
	return buf.Bytes(), hashDigest(diff), cw.n, nil
}

func hashDigest(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// normalize cleans the paths, refuses duplicates and bad entries, adds the
// missing parent directories and sorts the files by path.
func normalize(in []File) ([]File, error) {
	byPath := make(map[string]fs.FileMode, len(in))
	var out []File
	var errs []error
	for _, f := range in {
		p := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if p == "" || p == "." {
			errs = append(errs, fmt.Errorf("file %q: no path", f.Path))
			continue
		}
		if _, ok := byPath[p]; ok {
			errs = append(errs, fmt.Errorf("file %q: listed twice", p))
			continue
		}
		switch {
		case f.Mode.IsDir(), f.Mode&fs.ModeSymlink != 0:
			if f.Data != nil || f.Source != "" {
				errs = append(errs, fmt.Errorf("file %q: a directory or link has no contents", p))
				continue
			}
		case f.Mode.IsRegular():
			if f.Data != nil && f.Source != "" {
				errs = append(errs, fmt.Errorf("file %q: both Data and Source", p))
				continue
			}
		default:
			errs = append(errs, fmt.Errorf("file %q: mode %v is not a file, directory or symbolic link", p, f.Mode))
			continue
		}
		if f.Mode&fs.ModeSymlink != 0 && f.Link == "" {
			errs = append(errs, fmt.Errorf("file %q: a symbolic link without a target", p))
			continue
		}
		byPath[p] = f.Mode
		f.Path = p
		out = append(out, f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, f := range slices.Clone(out) {
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = fs.ModeDir | 0o755
				out = append(out, File{Path: dir, Mode: fs.ModeDir | 0o755})
			}
		}
	}
	for _, f := range out {
		if dir := path.Dir(f.Path); dir != "." && !byPath[dir].IsDir() {
			errs = append(errs, fmt.Errorf("file %q: its parent %q is not a directory", f.Path, dir))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func writeEntry(tw *tar.Writer, f File, mtime time.Time) error {
	perm := int64(f.Mode.Perm())
	if f.Mode&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if f.Mode&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if f.Mode&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch {
	case f.Mode.IsDir():
		h := header(f.Path+"/", tar.TypeDir, perm, 0, mtime)
		h.Uid, h.Gid = f.UID, f.GID
		return tw.WriteHeader(h)
	case f.Mode&fs.ModeSymlink != 0:
		h := header(f.Path, tar.TypeSymlink, perm, 0, mtime)
		h.Linkname, h.Uid, h.Gid = f.Link, f.UID, f.GID
		return tw.WriteHeader(h)
	}
	var r io.Reader = bytes.NewReader(f.Data)
	size := int64(len(f.Data))
	if f.Source != "" {
		src, err := os.Open(f.Source)
		if err != nil {
			return err
		}
		defer src.Close()
		st, err := src.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("source %s is not a regular file", f.Source)
		}
		r, size = src, st.Size()
	}
	h := header(f.Path, tar.TypeReg, perm, size, mtime)
	h.Uid, h.Gid = f.UID, f.GID
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes of %d", n, size)
	}
	return err
}
