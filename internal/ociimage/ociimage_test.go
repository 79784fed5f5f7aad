package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testImage is a small two-layer image; bin is a file on disk, the second
// layer's binary.
func testImage(t *testing.T, bin string) Image {
	t.Helper()
	return Image{
		Name:    "example.com/quiver:v1",
		Created: time.Unix(1700000000, 0),
		Layers: []Layer{
			{Comment: "base", Files: []File{
				{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n")},
				{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
				{Path: "home/nonroot", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
				{Path: "lib64/ld.so", Mode: fs.ModeSymlink | 0o777, Link: "/lib/x86_64-linux-gnu/ld.so"},
				{Path: "lib/x86_64-linux-gnu/ld.so", Mode: 0o755, Data: []byte("loader")},
			}},
			{Comment: "binary", Files: []File{{Path: "usr/bin/quiver", Mode: 0o755, Source: bin}}},
		},
		Config: Config{
			Entrypoint: []string{"/usr/bin/quiver"}, User: "65532:65532", WorkingDir: "/home/nonroot",
			Env:          []string{"PATH=/usr/bin:/bin"},
			ExposedPorts: []string{"8815/tcp", "6566/tcp"},
			Labels:       map[string]string{"b": "2", "a": "1"},
		},
	}
}

func writeBin(t *testing.T, data string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quiver")
	require.NoError(t, os.WriteFile(bin, []byte(data), 0o755))
	return bin
}

func TestWriteIsReproducible(t *testing.T) {
	bin := writeBin(t, "\x7fELF not really")
	var a, b bytes.Buffer
	ra, err := Write(&a, testImage(t, bin))
	require.NoError(t, err)
	// The same inputs, listed in another order.
	img := testImage(t, bin)
	files := img.Layers[0].Files
	for i, j := 0, len(files)-1; i < j; i, j = i+1, j-1 {
		files[i], files[j] = files[j], files[i]
	}
	rb, err := Write(&b, img)
	require.NoError(t, err)
	require.Equal(t, ra.Digest, rb.Digest)
	require.True(t, bytes.Equal(a.Bytes(), b.Bytes()), "two tarballs of the same image differ")

	// A different time or binary is a different image.
	img = testImage(t, bin)
	img.Created = img.Created.Add(time.Second)
	rc, err := Write(&bytes.Buffer{}, img)
	require.NoError(t, err)
	require.NotEqual(t, ra.Digest, rc.Digest)
	rd, err := Write(&bytes.Buffer{}, testImage(t, writeBin(t, "another")))
	require.NoError(t, err)
	require.NotEqual(t, ra.Digest, rd.Digest)
	require.Equal(t, ra.Manifest.Layers[0], rd.Manifest.Layers[0], "the base layer does not depend on the binary")
}

func TestOpenChecksAndExtracts(t *testing.T) {
	bin := writeBin(t, "binary contents")
	name := filepath.Join(t.TempDir(), "image.tar")
	res, err := WriteFile(name, testImage(t, bin))
	require.NoError(t, err)

	tb, err := Open(name)
	require.NoError(t, err)
	defer tb.Close()
	require.Equal(t, res.Digest, tb.Digest)
	require.Len(t, tb.Manifest.Layers, 2)
	require.Equal(t, "2023-11-14T22:13:20Z", tb.Config.Created)
	require.Equal(t, []string{"/usr/bin/quiver"}, tb.Config.Config.Entrypoint)
	require.Equal(t, "65532:65532", tb.Config.Config.User)
	require.Equal(t, map[string]struct{}{"6566/tcp": {}, "8815/tcp": {}}, tb.Config.Config.ExposedPorts)
	require.Equal(t, []string{"example.com/quiver:v1"}, tb.Docker[0].RepoTags)
	require.Equal(t, "v1", tb.Index.Manifests[0].Annotations["org.opencontainers.image.ref.name"])
	require.Equal(t, "example.com/quiver:v1", tb.Index.Manifests[0].Annotations["io.containerd.image.name"])

	// The base layer: sorted, parents added, fixed times and owners.
	entries, err := tb.Layer(0, 1<<20)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Header.Name)
		require.Equal(t, res.Config.Created, e.Header.ModTime.UTC().Format(time.RFC3339), e.Header.Name)
		require.Empty(t, e.Header.Uname)
		require.Empty(t, e.Header.Gname)
	}
	require.Equal(t, []string{"etc/", "etc/passwd", "home/", "home/nonroot/", "lib/", "lib/x86_64-linux-gnu/",
		"lib/x86_64-linux-gnu/ld.so", "lib64/", "lib64/ld.so", "tmp/"}, names)
	home := entries[3].Header
	require.Equal(t, [3]int64{65532, 65532, 0o700}, [3]int64{int64(home.Uid), int64(home.Gid), home.Mode})
	require.Equal(t, int64(0o1777), entries[9].Header.Mode)
	require.Equal(t, byte(tar.TypeSymlink), entries[8].Header.Typeflag)

	root := t.TempDir()
	require.NoError(t, tb.Extract(root))
	data, err := os.ReadFile(filepath.Join(root, "usr/bin/quiver"))
	require.NoError(t, err)
	require.Equal(t, "binary contents", string(data))
	st, err := os.Stat(filepath.Join(root, "usr/bin/quiver"))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o755), st.Mode().Perm())
	st, err = os.Stat(filepath.Join(root, "tmp"))
	require.NoError(t, err)
	require.Equal(t, fs.ModeDir|fs.ModeSticky|0o777, st.Mode())
	link, err := os.Readlink(filepath.Join(root, "lib64/ld.so"))
	require.NoError(t, err)
	require.Equal(t, "/lib/x86_64-linux-gnu/ld.so", link)
}

// TestOpenRefusesDamage rewrites one entry of a good tarball and expects
// Open to name the problem.
func TestOpenRefusesDamage(t *testing.T) {
	bin := writeBin(t, "binary contents")
	var good bytes.Buffer
	_, err := Write(&good, testImage(t, bin))
	require.NoError(t, err)

	rewrite := func(t *testing.T, edit func(name string, data []byte) []byte) string {
		t.Helper()
		var out bytes.Buffer
		tr := tar.NewReader(bytes.NewReader(good.Bytes()))
		tw := tar.NewWriter(&out)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			var buf bytes.Buffer
			_, err = buf.ReadFrom(tr)
			require.NoError(t, err)
			data := edit(h.Name, buf.Bytes())
			h.Size = int64(len(data))
			require.NoError(t, tw.WriteHeader(h))
			_, err = tw.Write(data)
			require.NoError(t, err)
		}
		require.NoError(t, tw.Close())
		name := filepath.Join(t.TempDir(), "image.tar")
		require.NoError(t, os.WriteFile(name, out.Bytes(), 0o644))
		return name
	}
	cases := []struct {
		name string
		edit func(name string, data []byte) []byte
		want string
	}{
		{"a layer blob changed", func(name string, data []byte) []byte {
			if strings.HasPrefix(name, "blobs/") && len(data) > 0 && data[0] == 0x1f { // gzip
				return append(bytes.Clone(data), 0)
			}
			return data
		}, "the descriptor says"},
		{"docker manifest disagrees", func(name string, data []byte) []byte {
			if name != "manifest.json" {
				return data
			}
			var dm []DockerManifest
			require.NoError(t, json.Unmarshal(data, &dm))
			dm[0].Layers = dm[0].Layers[:1]
			out, err := json.Marshal(dm)
			require.NoError(t, err)
			return out
		}, "manifest.json"},
		{"index names another manifest", func(name string, data []byte) []byte {
			if name != "index.json" {
				return data
			}
			return bytes.Replace(data, []byte(`"sha256:`), []byte(`"sha256:0`), 1)
		}, "manifest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(rewrite(t, c.edit))
			require.ErrorContains(t, err, c.want)
		})
	}
}

func TestWriteRefusesBadLayers(t *testing.T) {
	img := Image{Created: time.Unix(1, 0), Layers: []Layer{{Files: []File{
		{Path: "a", Mode: 0o644, Data: []byte("x")},
		{Path: "/a", Mode: 0o644},
		{Path: "a/b", Mode: 0o644},
		{Path: "l", Mode: fs.ModeSymlink | 0o777},
		{Path: "p", Mode: fs.ModeNamedPipe | 0o644},
	}}}}
	_, err := Write(&bytes.Buffer{}, img)
	require.ErrorContains(t, err, `"a": listed twice`)
	require.ErrorContains(t, err, `"l": a symbolic link without a target`)
	require.ErrorContains(t, err, `"p": mode`)

	img.Layers[0].Files = img.Layers[0].Files[:1]
	img.Layers[0].Files = append(img.Layers[0].Files, File{Path: "a/b", Mode: 0o644})
	_, err = Write(&bytes.Buffer{}, img)
	require.ErrorContains(t, err, `its parent "a" is not a directory`)

	_, err = Write(&bytes.Buffer{}, Image{Layers: img.Layers})
	require.ErrorContains(t, err, "no creation time")
}
