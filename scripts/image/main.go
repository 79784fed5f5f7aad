// Command image assembles Quiver's container image with no container
// daemon and no registry: a distroless-style base made of files from
// Debian packages, then the quiver binary, written as an OCI image-layout
// tarball (internal/ociimage) that docker load, podman load and skopeo
// copy oci-archive: take. It prints the image's digest on stdout.
//
//	go run ./scripts/image -binary bin/image/quiver -out bin/quiver-image.tar \
//	    -version v1.2.0 -revision $(git rev-parse HEAD)
//
// The packages' .deb files are fetched once with apt-get download (their
// SHA256 checked against the apt lists) into $QUIVER_CACHE/debs, by default
// ~/.cache/quiver/debs, and only the files the image needs are taken from
// them (see [packages]). The image is reproducible: the same binary, the
// same .deb files, the same flags and the same SOURCE_DATE_EPOCH (default:
// the time of the checkout's last commit) give the same tarball byte for
// byte. docs/image.md describes the image.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quiverdata/quiver/internal/ociimage"
)

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "bin/image/quiver", "the quiver `binary` to put at /usr/bin/quiver (built with -trimpath)")
	flag.StringVar(&o.out, "out", "bin/quiver-image.tar", "the OCI image-layout tarball to write")
	flag.StringVar(&o.cache, "cache", defaultCache(), "where the .deb files are kept (`DIR`)")
	flag.StringVar(&o.name, "name", "ghcr.io/quiverdata/quiver", "the image's repository; the tag is -version")
	flag.StringVar(&o.version, "version", "dev", "Quiver's version: the image's tag and its org.opencontainers.image.version")
	flag.StringVar(&o.revision, "revision", "", "the Git commit the binary was built from")
	flag.StringVar(&o.source, "source", "https://github.com/quiverdata/quiver", "the source repository's URL")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "image: unexpected arguments:", flag.Args())
		os.Exit(2)
	}
	created, err := sourceDateEpoch()
	if err == nil {
		o.created = created
		var res ociimage.Result
		if res, err = build(o); err == nil {
			fmt.Fprintf(os.Stderr, "wrote %s: %.1f MB compressed, %.1f MB uncompressed\n",
				o.out, float64(res.Size)/1e6, float64(res.Uncompressed)/1e6)
			fmt.Println(res.Digest)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// options are the inputs of an image: the same options give the same
// tarball.
type options struct {
	binary, out, cache string
	name, version      string
	revision, source   string
	created            time.Time
}

func defaultCache() string {
	if c := os.Getenv("QUIVER_CACHE"); c != "" {
		return filepath.Join(c, "debs")
	}
	if c := os.Getenv("XDG_CACHE_HOME"); c != "" {
		return filepath.Join(c, "quiver", "debs")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "quiver", "debs")
	}
	return filepath.Join(home, ".cache", "quiver", "debs")
}

// sourceDateEpoch is SOURCE_DATE_EPOCH, or the time of the checkout's last
// commit.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		out, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
		if err != nil {
			return time.Time{}, fmt.Errorf("no SOURCE_DATE_EPOCH and no Git commit to take the time from: %v", err)
		}
		s = strings.TrimSpace(string(out))
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// Ports quiver serve listens on by default (registry's serve.grpc,
// serve.http, serve.flight): gRPC, HTTP (with /metrics, /healthz,
// /readyz) and Arrow Flight.
var ports = []string{"6566/tcp", "6567/tcp", "8815/tcp"}

// nonroot is the image's user and group, as in distroless images.
const nonroot = 65532

// build writes the image o describes and returns what was written.
func build(o options) (ociimage.Result, error) {
	st, err := os.Stat(o.binary)
	if err != nil {
		return ociimage.Result{}, fmt.Errorf("the quiver binary: %w (make image builds it)", err)
	}
	if !st.Mode().IsRegular() {
		return ociimage.Result{}, fmt.Errorf("%s is not a file", o.binary)
	}
	debs, err := fetch(o.cache, packages)
	if err != nil {
		return ociimage.Result{}, err
	}
	base, list, err := baseLayer(debs)
	if err != nil {
		return ociimage.Result{}, err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "quiver",
		"org.opencontainers.image.description": "Quiver, a feature store: training sets, online serving, streaming materialization",
		"org.opencontainers.image.source":      o.source,
		"org.opencontainers.image.url":         o.source,
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.created":     o.created.Format(time.RFC3339),
		"org.opencontainers.image.base.name":   "debian:" + debianRelease(debs),
		packagesLabel:                          list,
	}
	if o.revision != "" {
		labels["org.opencontainers.image.revision"] = o.revision
	}
	img := ociimage.Image{
		Name:    o.name + ":" + tagOf(o.version),
		Created: o.created,
		Layers: []ociimage.Layer{
			base,
			{Comment: "quiver " + o.version, Files: []ociimage.File{
				{Path: "usr/bin/quiver", Mode: 0o755, Source: o.binary},
			}},
		},
		Config: ociimage.Config{
			Entrypoint: []string{"/usr/bin/quiver"},
			User:       fmt.Sprintf("%d:%d", nonroot, nonroot),
			WorkingDir: "/home/nonroot",
			Env: []string{
				"PATH=/usr/local/bin:/usr/bin:/bin",
				"HOME=/home/nonroot",
				"SSL_CERT_FILE=" + caBundle,
			},
			ExposedPorts: ports,
			Labels:       labels,
		},
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return ociimage.Result{}, err
	}
	return ociimage.WriteFile(o.out, img)
}

// tagOf makes a version a valid tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func tagOf(v string) string {
	b := []byte(v)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "latest"
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}
