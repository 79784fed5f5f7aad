package main

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/ociimage"
)

// debData is a package's data archive with the entries given.
func debData(t *testing.T, entries ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		data := []byte("contents of " + h.Name)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data))
		}
		require.NoError(t, tw.WriteHeader(&h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write(data)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func TestReadDataKeepsWhatTheImageNeeds(t *testing.T) {
	data := debData(t,
		tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "./lib/x86_64-linux-gnu/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "./lib/x86_64-linux-gnu/libc.so.6", Typeflag: tar.TypeReg, Mode: 0o755},
		tar.Header{Name: "./lib64/ld-linux-x86-64.so.2", Typeflag: tar.TypeSymlink, Linkname: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", Mode: 0o777},
		tar.Header{Name: "./usr/bin/ldd", Typeflag: tar.TypeReg, Mode: 0o755},
		tar.Header{Name: "./usr/share/doc/libc6/changelog.Debian.gz", Typeflag: tar.TypeReg, Mode: 0o644},
		tar.Header{Name: "./usr/share/doc/libc6/copyright", Typeflag: tar.TypeReg, Mode: 0o644},
		tar.Header{Name: "./usr/share/locale/de/LC_MESSAGES/libc.mo", Typeflag: tar.TypeReg, Mode: 0o644},
	)
	var got []ociimage.File
	p := pkg{name: "libc6", keep: []string{"lib/x86_64-linux-gnu/", "lib64/"}}
	require.NoError(t, readData(p, bytes.NewReader(data), func(f ociimage.File) error {
		got = append(got, f)
		return nil
	}))
	var paths []string
	for _, f := range got {
		paths = append(paths, f.Path)
	}
	require.Equal(t, []string{"lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu/libc.so.6",
		"lib64/ld-linux-x86-64.so.2", "usr/share/doc/libc6/copyright"}, paths)
	require.Equal(t, fs.ModeDir|0o755, got[0].Mode)
	require.Equal(t, "contents of ./lib/x86_64-linux-gnu/libc.so.6", string(got[1].Data))
	require.Equal(t, fs.ModeSymlink|0o777, got[2].Mode)
	require.Equal(t, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", got[2].Link)
}

func TestReadDataRefuses(t *testing.T) {
	p := pkg{name: "x", keep: []string{"usr/"}}
	add := func(ociimage.File) error { return nil }
	for name, h := range map[string]tar.Header{
		"setuid":       {Name: "./usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755},
		"not root's":   {Name: "./usr/lib/x", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1000},
		"a hard link":  {Name: "./usr/lib/y", Typeflag: tar.TypeLink, Linkname: "./usr/lib/x"},
		"a named pipe": {Name: "./usr/lib/fifo", Typeflag: tar.TypeFifo, Mode: 0o644},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, readData(p, bytes.NewReader(debData(t, h)), add))
		})
	}
}

func TestCertificatesAreCollected(t *testing.T) {
	clear(certificates)
	addCertificate("usr/share/ca-certificates/mozilla/B.crt", []byte("b"))
	addCertificate("usr/share/ca-certificates/mozilla/A.crt", []byte("a"))
	addCertificate("usr/share/doc/ca-certificates/copyright", []byte("not a certificate"))
	require.Len(t, certificates, 2)
}

func TestTagOf(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.0":           "v1.2.0",
		"909ed28-dirty":    "909ed28-dirty",
		"":                 "latest",
		"-x":               "_x",
		"feature/branch+1": "feature_branch_1",
	} {
		require.Equal(t, want, tagOf(in), in)
	}
}
