//go:build image

package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/ociimage"
)

// The tests of the built image (build tag image, so that go test ./...
// leaves them out) read the tarball named by QUIVER_IMAGE, which make
// image writes:
//
//	make build image
//	QUIVER_IMAGE=$PWD/bin/quiver-image.tar QUIVER_BIN=$PWD/bin/quiver go test -tags image -count=1 ./scripts/image/
//
// QUIVER_BIN is the host's quiver that the image's answers are compared
// with; by default the image's own binary, run with the host's libraries.
// As root the image's quiver runs in a chroot of the unpacked image as
// its user (65532), else through the image's own dynamic loader and
// libraries.

// imagePath is QUIVER_IMAGE, or skips the test (fails it under CI=true).
func imagePath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("QUIVER_IMAGE")
	if p != "" {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("!!! QUIVER_IMAGE is not set and CI=true: make image, then QUIVER_IMAGE=$PWD/bin/quiver-image.tar go test -tags image ./scripts/image/")
	}
	t.Skip("!!! QUIVER_IMAGE is not set: the built image is not tested; make image, then QUIVER_IMAGE=$PWD/bin/quiver-image.tar go test -tags image ./scripts/image/ (under CI=true this is a failure)")
	return ""
}

// unpacked is the image opened and extracted into a root filesystem.
type unpacked struct {
	tb     *ociimage.Tarball
	rootfs string
}

func unpack(t *testing.T) unpacked {
	t.Helper()
	tb, err := ociimage.Open(imagePath(t))
	require.NoError(t, err)
	t.Cleanup(func() { tb.Close() })
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	require.NoError(t, os.Mkdir(rootfs, 0o755))
	require.NoError(t, tb.Extract(rootfs))
	return unpacked{tb, rootfs}
}

func TestImage(t *testing.T) {
	u := unpack(t)
	cfg := u.tb.Config.Config
	labels := cfg.Labels

	t.Run("config", func(t *testing.T) {
		require.Len(t, u.tb.Manifest.Layers, 2)
		require.Equal(t, []string{"/usr/bin/quiver"}, cfg.Entrypoint)
		require.Empty(t, cfg.Cmd)
		require.Equal(t, "65532:65532", cfg.User)
		require.Equal(t, "/home/nonroot", cfg.WorkingDir)
		require.Contains(t, cfg.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
		require.Equal(t, map[string]struct{}{"6566/tcp": {}, "6567/tcp": {}, "8815/tcp": {}}, cfg.ExposedPorts)
		for _, k := range []string{"source", "version", "revision", "created"} {
			require.NotEmpty(t, labels["org.opencontainers.image."+k], k)
		}
		require.Equal(t, u.tb.Config.Created, labels["org.opencontainers.image.created"])
		require.Len(t, u.tb.Docker[0].RepoTags, 1)
		require.True(t, strings.HasPrefix(u.tb.Docker[0].RepoTags[0], "ghcr.io/quiverdata/quiver:"), u.tb.Docker[0].RepoTags[0])

		// The second layer is the binary alone.
		entries, err := u.tb.Layer(1, 0)
		require.NoError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Header.Name)
		}
		require.Equal(t, []string{"usr/", "usr/bin/", "usr/bin/quiver"}, names)
		require.Equal(t, int64(0o755), entries[2].Header.Mode)
		require.Equal(t, [2]int{0, 0}, [2]int{entries[2].Header.Uid, entries[2].Header.Gid})
	})

	// containers/image, which skopeo and podman load use, reads the
	// tarball both as an OCI archive and as docker load's format.
	t.Run("skopeo", func(t *testing.T) {
		if _, err := exec.LookPath("skopeo"); err != nil {
			t.Skip("!!! skopeo is not installed (Debian: apt-get install skopeo): the tarball is not read by containers/image")
		}
		var inspected struct{ Digest string }
		out, err := exec.Command("skopeo", "inspect", "oci-archive:"+imagePath(t)).Output()
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(out, &inspected))
		require.Equal(t, u.tb.Digest, inspected.Digest)
		out, err = exec.Command("skopeo", "inspect", "--config", "docker-archive:"+imagePath(t)).Output()
		require.NoError(t, err)
		var dockerCfg ociimage.ImageConfig
		require.NoError(t, json.Unmarshal(out, &dockerCfg))
		require.Equal(t, u.tb.Config.RootFS.DiffIDs, dockerCfg.RootFS.DiffIDs)
		require.Equal(t, cfg.Entrypoint, dockerCfg.Config.Entrypoint)
	})

	t.Run("packages", func(t *testing.T) {
		txt, err := os.ReadFile(filepath.Join(u.rootfs, "usr/share/quiver/packages.txt"))
		require.NoError(t, err)
		var fromTxt []string
		for _, line := range strings.Split(strings.TrimSpace(string(txt)), "\n") {
			if f := strings.Fields(line); len(f) == 4 && !strings.HasPrefix(line, "#") {
				fromTxt = append(fromTxt, f[0]+"="+f[1])
			}
		}
		require.Equal(t, labels[packagesLabel], strings.Join(fromTxt, " "))
		for _, p := range []string{"libc6", "libstdc++6", "libgcc-s1", "ca-certificates", "tzdata"} {
			require.Contains(t, labels[packagesLabel], p+"=")
			require.FileExists(t, filepath.Join(u.rootfs, "var/lib/dpkg/status.d", p))
		}
		// No shell, no programs but quiver, no docs but the copyrights.
		require.NoFileExists(t, filepath.Join(u.rootfs, "bin/sh"))
		bins, err := os.ReadDir(filepath.Join(u.rootfs, "usr/bin"))
		require.NoError(t, err)
		require.Len(t, bins, 1)
		require.NoDirExists(t, filepath.Join(u.rootfs, "usr/share/man"))
		require.NoDirExists(t, filepath.Join(u.rootfs, "usr/share/locale"))
	})

	t.Run("users", func(t *testing.T) {
		passwd, err := os.ReadFile(filepath.Join(u.rootfs, "etc/passwd"))
		require.NoError(t, err)
		require.Contains(t, string(passwd), "nonroot:x:65532:65532:nonroot:/home/nonroot:")
		group, err := os.ReadFile(filepath.Join(u.rootfs, "etc/group"))
		require.NoError(t, err)
		require.Contains(t, string(group), "nonroot:x:65532:")
		st, err := os.Stat(filepath.Join(u.rootfs, "tmp"))
		require.NoError(t, err)
		require.Equal(t, fs.ModeDir|fs.ModeSticky|0o777, st.Mode())
		if os.Geteuid() == 0 {
			st, err := os.Stat(filepath.Join(u.rootfs, "home/nonroot"))
			require.NoError(t, err)
			require.Equal(t, uint32(65532), st.Sys().(*syscall.Stat_t).Uid)
		}
	})

	t.Run("tls roots", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(u.rootfs, "etc/ssl/certs/ca-certificates.crt"))
		require.NoError(t, err)
		n := 0
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				require.Empty(t, bytes.TrimSpace(rest), "the bundle ends in something that is not PEM")
				break
			}
			_, err := x509.ParseCertificate(b.Bytes)
			require.NoError(t, err, "certificate %d", n+1)
			n++
		}
		require.Greater(t, n, 100)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(data))
	})

	t.Run("time zones", func(t *testing.T) {
		for _, zone := range []string{"UTC", "Europe/Berlin", "America/New_York"} {
			p, err := resolve(u.rootfs, "/usr/share/zoneinfo/"+zone)
			require.NoError(t, err)
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			_, err = time.LoadLocationFromTZData(zone, data)
			require.NoError(t, err, zone)
		}
	})

	t.Run("shared libraries", func(t *testing.T) {
		f, err := elf.Open(filepath.Join(u.rootfs, "usr/bin/quiver"))
		require.NoError(t, err)
		defer f.Close()
		var interp string
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				b := make([]byte, p.Filesz)
				_, err := p.ReadAt(b, 0)
				require.NoError(t, err)
				interp = strings.TrimRight(string(b), "\x00")
			}
		}
		require.Equal(t, "/lib64/ld-linux-x86-64.so.2", interp)
		_, err = resolve(u.rootfs, interp)
		require.NoError(t, err, "the loader")
		needed, err := f.ImportedLibraries()
		require.NoError(t, err)
		require.Contains(t, needed, "libc.so.6")
		found := map[string]string{}
		require.NoError(t, resolveNeeded(u.rootfs, needed, found))
		t.Logf("libraries: %v", found)
	})

	// The version the image's quiver reports is the image's.
	t.Run("quiver version", func(t *testing.T) {
		out := runImage(t, u, "/", "version")
		require.Contains(t, out, "quiver "+labels["org.opencontainers.image.version"]+",")
		rev := labels["org.opencontainers.image.revision"]
		require.Contains(t, out, "commit "+rev[:min(12, len(rev))])
	})

	// A training set of the quickstart made in the image is the one the
	// host's quiver makes from the same repository.
	t.Run("training set", func(t *testing.T) {
		host := hostQuiver(t, u)
		src := filepath.Join(t.TempDir(), "repo")
		hostRun(t, host, "", "init", src)
		require.NoError(t, os.RemoveAll(filepath.Join(src, ".git"))) // no Git in the image
		hostRepo := filepath.Join(t.TempDir(), "repo")
		require.NoError(t, os.CopyFS(hostRepo, os.DirFS(src)))
		imageRepo := filepath.Join(u.rootfs, "home/nonroot/repo")
		require.NoError(t, os.CopyFS(imageRepo, os.DirFS(src)))
		if os.Geteuid() == 0 {
			require.NoError(t, chownTree(imageRepo, 65532, 65532))
		}
		args := []string{"training-set", "--entities", "data/driver_labels.parquet",
			"--features", "driver_hourly:conv_rate,driver_hourly:embedding", "--out", "train.parquet"}

		hostRun(t, host, hostRepo, "apply")
		hostRun(t, host, hostRepo, args...)
		runImage(t, u, "/home/nonroot/repo", "apply")
		out := runImage(t, u, "/home/nonroot/repo", args...)
		require.Contains(t, out, "Wrote 1000 rows")
		requireSameTable(t, filepath.Join(hostRepo, "train.parquet"), filepath.Join(imageRepo, "train.parquet"))
	})
}

// TestImageIsReproducible assembles the image twice more from the
// binary in QUIVER_IMAGE, the same packages and the same labels and
// creation time, and requires the same digest each time, and that of
// QUIVER_IMAGE unless Debian's packages changed since it was made.
func TestImageIsReproducible(t *testing.T) {
	u := unpack(t)
	labels := u.tb.Config.Config.Labels
	created, err := time.Parse(time.RFC3339, u.tb.Config.Created)
	require.NoError(t, err)
	ref := u.tb.Docker[0].RepoTags[0]
	o := options{
		binary:   filepath.Join(u.rootfs, "usr/bin/quiver"),
		cache:    defaultCache(),
		name:     ref[:strings.LastIndexByte(ref, ':')],
		version:  labels["org.opencontainers.image.version"],
		revision: labels["org.opencontainers.image.revision"],
		source:   labels["org.opencontainers.image.source"],
		created:  created,
	}
	var digests []string
	var rebuilt *ociimage.Tarball
	for i := range 2 {
		o.out = filepath.Join(t.TempDir(), fmt.Sprintf("image-%d.tar", i))
		res, err := build(o)
		require.NoError(t, err)
		digests = append(digests, res.Digest)
		if i == 0 {
			rebuilt, err = ociimage.Open(o.out)
			require.NoError(t, err)
			defer rebuilt.Close()
		}
	}
	require.Equal(t, digests[0], digests[1], "two builds from the same inputs differ")
	if got, want := rebuilt.Config.Config.Labels[packagesLabel], labels[packagesLabel]; got != want {
		t.Logf("!!! Debian's packages changed since %s was made (%s, now %s): its digest is not compared", imagePath(t), want, got)
		return
	}
	require.Equal(t, u.tb.Digest, digests[0], "the image rebuilt from its own inputs has another digest")
}

// runImage runs the image's quiver with args in dir (a directory of the
// image) with the image config's environment and returns its output. As
// root it runs in a chroot of the root filesystem as the image's user;
// else through the image's loader and libraries, in rootfs/dir.
func runImage(t *testing.T, u unpacked, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "/usr/bin/quiver", args...)
		// exec resolves no path for a name with a slash: the child
		// executes /usr/bin/quiver after its chroot.
		cmd.Path = "/usr/bin/quiver"
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     u.rootfs,
			Credential: &syscall.Credential{Uid: 65532, Gid: 65532},
		}
		cmd.Dir = dir
	} else {
		loader, err := resolve(u.rootfs, "/lib64/ld-linux-x86-64.so.2")
		require.NoError(t, err)
		libs := []string{filepath.Join(u.rootfs, "lib/x86_64-linux-gnu"), filepath.Join(u.rootfs, "usr/lib/x86_64-linux-gnu")}
		cmd = exec.CommandContext(ctx, loader, append([]string{"--inhibit-cache", "--library-path", strings.Join(libs, ":"),
			filepath.Join(u.rootfs, "usr/bin/quiver")}, args...)...)
		cmd.Dir = filepath.Join(u.rootfs, dir)
	}
	cmd.Env = slices.Clone(u.tb.Config.Config.Env)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "quiver %s in the image:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// hostQuiver is QUIVER_BIN, or the image's binary run with the host's
// libraries.
func hostQuiver(t *testing.T, u unpacked) string {
	if b := os.Getenv("QUIVER_BIN"); b != "" {
		return b
	}
	t.Logf("QUIVER_BIN is not set: the image's binary runs on the host to compare with")
	return filepath.Join(u.rootfs, "usr/bin/quiver")
}

func hostRun(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "quiver %s on the host:\n%s", strings.Join(args, " "), out)
}

func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// resolve returns the host path of the image path p, following symbolic
// links (absolute ones from the root filesystem) inside rootfs.
func resolve(rootfs, p string) (string, error) {
	p = path.Clean("/" + p)
	for range 40 {
		done := "/"
		rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
		relinked := false
		for i, part := range rest {
			cur := path.Join(done, part)
			st, err := os.Lstat(filepath.Join(rootfs, cur))
			if err != nil {
				return "", fmt.Errorf("%s: %w", p, err)
			}
			if st.Mode()&fs.ModeSymlink == 0 {
				done = cur
				continue
			}
			target, err := os.Readlink(filepath.Join(rootfs, cur))
			if err != nil {
				return "", err
			}
			if !path.IsAbs(target) {
				target = path.Join(done, target)
			}
			p = path.Clean(path.Join(append([]string{target}, rest[i+1:]...)...))
			relinked = true
			break
		}
		if !relinked {
			return filepath.Join(rootfs, done), nil
		}
	}
	return "", fmt.Errorf("%s: too many symbolic links", p)
}

// libraryDirs is where the image's loader looks for libraries: Debian's
// multiarch directories, which it searches by default.
var libraryDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"}

// resolveNeeded finds each library in the image and, in turn, the
// libraries it needs, recording where in found.
func resolveNeeded(rootfs string, needed []string, found map[string]string) error {
	for _, lib := range needed {
		if _, ok := found[lib]; ok {
			continue
		}
		var host string
		for _, dir := range libraryDirs {
			if p, err := resolve(rootfs, path.Join(dir, lib)); err == nil {
				host = p
				found[lib] = path.Join(dir, lib)
				break
			}
		}
		if host == "" {
			return fmt.Errorf("%s is not in the image (looked in %v)", lib, libraryDirs)
		}
		f, err := elf.Open(host)
		if err != nil {
			return fmt.Errorf("%s: %w", lib, err)
		}
		more, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", lib, err)
		}
		if err := resolveNeeded(rootfs, more, found); err != nil {
			return fmt.Errorf("%s, needed by %s", err, lib)
		}
	}
	return nil
}

// requireSameTable requires two Parquet files to hold the same schema and
// rows.
func requireSameTable(t *testing.T, a, b string) {
	t.Helper()
	x, y := readParquet(t, a), readParquet(t, b)
	defer x.Release()
	defer y.Release()
	require.True(t, x.Schema().Equal(y.Schema()), "schemas differ:\n%s\n%s", x.Schema(), y.Schema())
	require.Equal(t, x.NumRows(), y.NumRows())
	require.Positive(t, x.NumRows())
	require.True(t, array.TableEqual(x, y), "the training sets differ")
}

func readParquet(t *testing.T, name string) arrow.Table {
	t.Helper()
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	require.NoError(t, err)
	defer pf.Close()
	r, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	require.NoError(t, err)
	tbl, err := r.ReadTable(context.Background())
	require.NoError(t, err)
	return tbl
}
