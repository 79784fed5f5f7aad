package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/quiverdata/quiver/internal/ociimage"
)

// pkg is a Debian package of the base and the files the image takes from
// it: the paths under the prefixes in keep (every file, link and directory
// below one), plus its copyright file, which the licences of glibc and
// GCC's runtime ask to travel with the libraries. Everything else (docs,
// man pages, locales, programs, maintainer scripts) stays out.
type pkg struct {
	name string
	keep []string
	// also, when set, is handed every file of the package, kept or not:
	// ca-certificates' certificates become the bundle this way.
	also func(name string, data []byte)
}

// packages are the base's packages. quiver links glibc (libc, libm, the
// loader), libstdc++ and libgcc_s (DuckDB is C++); Go and DuckDB read
// time zones from /usr/share/zoneinfo; TLS to object stores, Redis and
// Kafka verifies against the CA bundle; netbase's /etc/services and
// /etc/protocols serve getaddrinfo and Go's resolver; base-files gives
// /etc/os-release, which scanners use with /var/lib/dpkg/status.d to know
// what the image holds. Paths are those of Debian 12 (bookworm), whose
// packages put the libraries in /lib, not yet in /usr/lib.
//
// To add a package: add it here with the paths the image needs, then
// make image. Dependencies are not resolved: list every package whose
// files are needed.
var packages = []pkg{
	{name: "base-files", keep: []string{"etc/os-release", "etc/debian_version", "usr/lib/os-release"}},
	{name: "ca-certificates", also: addCertificate},
	// The copyright of libgcc-s1 and libstdc++6 (their doc directories
	// are links to gcc-12-base's).
	{name: "gcc-12-base"},
	{name: "libc6", keep: []string{"lib/x86_64-linux-gnu/", "lib64/"}},
	{name: "libgcc-s1", keep: []string{"lib/x86_64-linux-gnu/"}},
	{name: "libstdc++6", keep: []string{"usr/lib/x86_64-linux-gnu/libstdc++.so"}},
	{name: "netbase", keep: []string{"etc/protocols", "etc/services", "etc/rpc", "etc/ethertypes"}},
	{name: "tzdata", keep: []string{"usr/share/zoneinfo/"}},
}

// packagesLabel is the image label that lists the packages, like
// /usr/share/quiver/packages.txt.
const packagesLabel = "com.github.quiverdata.quiver.debian-packages"

// caBundle is where the CA certificates are, one PEM file.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// certificates collects ca-certificates' Mozilla certificates by name.
var certificates = map[string][]byte{}

func addCertificate(name string, data []byte) {
	if strings.HasPrefix(name, "usr/share/ca-certificates/mozilla/") && strings.HasSuffix(name, ".crt") {
		certificates[name] = data
	}
}

// deb is a fetched package file.
type deb struct {
	pkg
	version, arch, file, sha256 string
	control                     []byte
}

// fetch returns the current version of each package (apt's candidate) as
// a .deb file in dir, downloading those it does not hold yet and checking
// every file's SHA256 against apt's lists.
func fetch(dir string, pkgs []pkg) ([]deb, error) {
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: the image's base is made from Debian packages, and needs Debian's apt and dpkg", tool)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names := make([]string, len(pkgs))
	for i, p := range pkgs {
		names[i] = p.name
	}
	// Each line: 'URL' FILE SIZE SHA256:HEX. apt-get leaves out the files
	// its directory holds already, so it asks from an empty one.
	empty, err := os.MkdirTemp(dir, ".lists-")
	if err != nil {
		return nil, err
	}
	out, err := aptGet(empty, append([]string{"download", "--print-uris"}, names...)...)
	os.Remove(empty)
	if err != nil {
		return nil, fmt.Errorf("apt-get download --print-uris: %w (apt-get update may be needed)", err)
	}
	want := map[string][2]string{} // package → file, sha256
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || !strings.HasPrefix(f[3], "SHA256:") {
			return nil, fmt.Errorf("apt-get download --print-uris: unexpected line %q", line)
		}
		name, _, _ := strings.Cut(f[1], "_")
		want[name] = [2]string{f[1], strings.TrimPrefix(f[3], "SHA256:")}
	}
	var debs []deb
	for _, p := range pkgs {
		w, ok := want[p.name]
		if !ok {
			return nil, fmt.Errorf("apt-get has no package %s", p.name)
		}
		file := filepath.Join(dir, w[0])
		if sum, err := sha256File(file); err != nil || sum != w[1] {
			fmt.Fprintf(os.Stderr, "fetching %s into %s\n", w[0], dir)
			if err := download(dir, p.name, w[0], w[1]); err != nil {
				return nil, err
			}
		}
		// FILE is NAME_VERSION_ARCH.deb, the version with its colon
		// (an epoch) written %3a.
		parts := strings.Split(strings.TrimSuffix(w[0], ".deb"), "_")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s: not NAME_VERSION_ARCH.deb", w[0])
		}
		control, err := exec.Command("dpkg-deb", "--info", file, "control").Output()
		if err != nil {
			return nil, fmt.Errorf("dpkg-deb --info %s: %w", file, err)
		}
		debs = append(debs, deb{pkg: p, version: strings.ReplaceAll(parts[1], "%3a", ":"), arch: parts[2],
			file: file, sha256: w[1], control: control})
	}
	return debs, nil
}

// download fetches one package file into dir through a scratch directory,
// checks its SHA256 and moves it into place.
func download(dir, name, file, sum string) error {
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The exact version the lists named: FILE's second field.
	version := strings.ReplaceAll(strings.Split(file, "_")[1], "%3a", ":")
	if _, err := aptGet(tmp, "download", name+"="+version); err != nil {
		return fmt.Errorf("apt-get download %s=%s: %w", name, version, err)
	}
	got, err := sha256File(filepath.Join(tmp, file))
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("%s: SHA256 %s, apt's lists say %s", file, got, sum)
	}
	return os.Rename(filepath.Join(tmp, file), filepath.Join(dir, file))
}

func aptGet(dir string, args ...string) ([]byte, error) {
	if os.Geteuid() == 0 {
		// As root, apt would hand the download to its _apt user, which
		// may not write to dir.
		args = append([]string{"-o", "APT::Sandbox::User=root"}, args...)
	}
	cmd := exec.Command("apt-get", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func sha256File(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// debianRelease is the major version of Debian that base-files names
// (/etc/debian_version), e.g. "12".
func debianRelease(debs []deb) string {
	for _, d := range debs {
		if d.name == "base-files" {
			major, _, _ := strings.Cut(d.version, ".")
			return major
		}
	}
	return "unknown"
}

// baseLayer is the base layer made from the packages, and the list of
// them ("NAME=VERSION" separated by spaces) for the image's label.
func baseLayer(debs []deb) (ociimage.Layer, string, error) {
	clear(certificates)
	var files []ociimage.File
	seen := map[string]int{} // path → index in files
	add := func(f ociimage.File) error {
		if i, ok := seen[f.Path]; ok {
			if files[i].Mode.IsDir() && f.Mode.IsDir() {
				return nil // a directory two packages hold
			}
			return fmt.Errorf("%s: in two packages", f.Path)
		}
		seen[f.Path] = len(files)
		files = append(files, f)
		return nil
	}
	var list, txt []string
	for _, d := range debs {
		if err := extract(d, add); err != nil {
			return ociimage.Layer{}, "", fmt.Errorf("%s: %w", filepath.Base(d.file), err)
		}
		// What dpkg would know of the package, where distroless images
		// keep it, for scanners.
		if err := add(ociimage.File{Path: "var/lib/dpkg/status.d/" + d.name, Mode: 0o644, Data: d.control}); err != nil {
			return ociimage.Layer{}, "", err
		}
		list = append(list, d.name+"="+d.version)
		txt = append(txt, fmt.Sprintf("%s %s %s %s", d.name, d.version, d.arch, d.sha256))
	}
	if len(certificates) == 0 {
		return ociimage.Layer{}, "", errors.New("ca-certificates held no certificates under usr/share/ca-certificates/mozilla")
	}
	// The bundle ca-certificates' postinst (update-ca-certificates) would
	// write: every certificate, in name order.
	var bundle bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(certificates)) {
		bundle.Write(certificates[name])
		if !bytes.HasSuffix(certificates[name], []byte("\n")) {
			bundle.WriteByte('\n')
		}
	}
	slices.Sort(list)
	slices.Sort(txt)
	generated := []ociimage.File{
		{Path: strings.TrimPrefix(caBundle, "/"), Mode: 0o644, Data: bundle.Bytes()},
		{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonroot, nonroot))},
		{Path: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\n" + fmt.Sprintf("nonroot:x:%d:\n", nonroot))},
		{Path: "etc/nsswitch.conf", Mode: 0o644, Data: []byte("passwd: files\ngroup: files\nshadow: files\n" +
			"hosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n")},
		{Path: "etc/hosts", Mode: 0o644, Data: []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")},
		{Path: "usr/share/quiver/packages.txt", Mode: 0o644, Data: []byte(
			"# The Debian packages whose files make the image's base: name, version, architecture, SHA256 of the .deb\n" +
				strings.Join(txt, "\n") + "\n")},
		{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "root", Mode: fs.ModeDir | 0o700},
		{Path: "home/nonroot", Mode: fs.ModeDir | 0o700, UID: nonroot, GID: nonroot},
		{Path: "usr/bin", Mode: fs.ModeDir | 0o755},
	}
	for _, f := range generated {
		if err := add(f); err != nil {
			return ociimage.Layer{}, "", err
		}
	}
	return ociimage.Layer{Files: files, Comment: "Debian " + strings.Join(list, " ")}, strings.Join(list, " "), nil
}

// extract hands add the files of d that the image keeps, read from the
// package's data archive.
func extract(d deb, add func(ociimage.File) error) error {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", d.file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	err = readData(d.pkg, bufio.NewReader(stdout), add)
	if err != nil {
		_, _ = io.Copy(io.Discard, stdout)
	}
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("dpkg-deb --fsys-tarfile: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return err
}

func readData(p pkg, r io.Reader, add func(ociimage.File) error) error {
	copyright := "usr/share/doc/" + p.name + "/copyright"
	return ociimage.EachEntry(r, func(h *tar.Header, tr io.Reader) error {
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			return nil
		}
		var data []byte
		if h.Typeflag == tar.TypeReg {
			var err error
			if data, err = io.ReadAll(tr); err != nil {
				return err
			}
		}
		if p.also != nil {
			p.also(name, data)
		}
		if !kept(p, name, copyright) {
			return nil
		}
		f := ociimage.File{Path: name, Mode: fs.FileMode(h.Mode).Perm()}
		switch h.Typeflag {
		case tar.TypeDir:
			f.Mode |= fs.ModeDir
		case tar.TypeReg:
			f.Data = data
			if h.Mode&0o4000 != 0 || h.Mode&0o2000 != 0 {
				return fmt.Errorf("%s: setuid or setgid", name)
			}
		case tar.TypeSymlink:
			f.Mode |= fs.ModeSymlink
			f.Link = h.Linkname
		default:
			return fmt.Errorf("%s: entry type %q", name, h.Typeflag)
		}
		if h.Uid != 0 || h.Gid != 0 {
			return fmt.Errorf("%s: owned by %d:%d, not root", name, h.Uid, h.Gid)
		}
		return add(f)
	})
}

// kept says whether the image takes the package's entry name.
func kept(p pkg, name, copyright string) bool {
	if name == copyright {
		return true
	}
	for _, k := range p.keep {
		if name == strings.TrimSuffix(k, "/") || strings.HasPrefix(name, k) {
			return true
		}
	}
	return false
}
