package storage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/quiverdata/quiver/storage"
)

func TestParseURI(t *testing.T) {
	for _, c := range []struct {
		in   string
		want storage.URI
	}{
		{"s3://bucket/key", storage.URI{Scheme: "s3", Bucket: "bucket", Key: "key"}},
		{"s3://my.bucket-1/a/b/*.parquet", storage.URI{Scheme: "s3", Bucket: "my.bucket-1", Key: "a/b/*.parquet"}},
		{"S3://bucket/a%20b", storage.URI{Scheme: "s3", Bucket: "bucket", Key: "a%20b"}}, // literal
		{"s3://bucket", storage.URI{Scheme: "s3", Bucket: "bucket"}},
		{"s3://bucket/", storage.URI{Scheme: "s3", Bucket: "bucket"}},
		{"s3://bucket/a//b/", storage.URI{Scheme: "s3", Bucket: "bucket", Key: "a//b/"}},
		{"file:///data/x.parquet", storage.URI{Scheme: "file", Key: "/data/x.parquet"}},
		{"file://localhost/data/a%20b", storage.URI{Scheme: "file", Key: "/data/a b"}},
		{"data/x.parquet", storage.URI{Scheme: "file", Key: "data/x.parquet"}},
		{"./data//x/../y", storage.URI{Scheme: "file", Key: "data/y"}},
		{"/abs/p", storage.URI{Scheme: "file", Key: "/abs/p"}},
		{"C:/x", storage.URI{Scheme: "file", Key: "C:/x"}},
		{"weird/dir://x", storage.URI{Scheme: "file", Key: "weird/dir:/x"}},
	} {
		got, err := storage.ParseURI(c.in)
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, got, c.in)
	}
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"s3://", "no bucket"},
		{"s3:///key", "no bucket"},
		{"s3://ab/key", "3 to 63"},
		{"s3://Bucket/key", "lower-case"},
		{"s3://bucket_x/key", "lower-case"},
		{"s3://-bucket/key", "start and end"},
		{"s3://a..b/key", "adjacent dots"},
		{"s3://192.168.1.1/key", "IP address"},
		{"s3://bucket/" + strings.Repeat("k", 1025), "longer than 1024"},
		{"gs://bucket/key", `unknown scheme "gs"`},
		{"file://host/x", "localhost"},
		{"file://relative", "localhost"},
		{"file:relative", ""}, // no "://": a local path
		{"file:///x?y=1", "no user, query"},
		{"a\x00b", "NUL"},
	} {
		_, err := storage.ParseURI(c.in)
		if c.want == "" {
			require.NoError(t, err, c.in)
			continue
		}
		require.ErrorIs(t, err, storage.ErrInvalid, c.in)
		require.ErrorContains(t, err, c.want, c.in)
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"s3://bucket/key", "s3://b.c-d/a/*.parquet", "S3://bucket", "s3://bucket/a%2Fb", "file:///x/y",
		"file://localhost/a%20b", "rel/path", "/abs", "", "s3://", "gs://x/y", "file://h/x", "a://b", "./x://y",
		"s3://192.168.0.1/x", "s3://bucket/\x00", "file:///%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := storage.ParseURI(s)
		if err != nil {
			require.ErrorIs(t, err, storage.ErrInvalid)
			return
		}
		// What parses renders to a string that parses to the same URI.
		again, err := storage.ParseURI(u.String())
		require.NoError(t, err, "%q renders as %q", s, u.String())
		require.Equal(t, u, again, "%q renders as %q", s, u.String())
		if u.Scheme == storage.SchemeS3 {
			require.NotEmpty(t, u.Bucket)
			require.LessOrEqual(t, len(u.Key), storage.MaxKeyLen)
		} else {
			require.Empty(t, u.Bucket)
			require.NotContains(t, u.Key, "\x00")
		}
	})
}

func TestGlobPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"a/b/*.parquet": "a/b/",
		"a/b/c":         "a/b/c",
		"a/x?y":         "a/x",
		"a/[ab]":        "a/",
		`a/\*b/*`:       "a/*b/",
		"*":             "",
		"a/{b}/*":       "a/{b}/",
	} {
		require.Equal(t, want, storage.GlobPrefix(in), in)
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
s3:
  endpoint: https://minio.internal:9000
  region: eu-west-1
  path_style: true
  ca_file: /etc/quiver/ca.pem
  insecure_skip_verify: false
  max_retries: 7
  part_size: 32MiB
  concurrency: 4
  read_timeout: 90s
`
	var cfg storage.Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg))
	require.Equal(t, storage.S3Options{
		Endpoint: "https://minio.internal:9000", Region: "eu-west-1", PathStyle: true, CAFile: "/etc/quiver/ca.pem",
		MaxRetries: 7, PartSize: 32 << 20, Concurrency: 4, ReadTimeout: storage.Duration(90 * time.Second),
	}, cfg.S3)

	var bad storage.Config
	err := yaml.Unmarshal([]byte("s3: {part_size: 16 potatoes}"), &bad)
	require.ErrorContains(t, err, "16MiB")
	err = yaml.Unmarshal([]byte("s3: {read_timeout: soon}"), &bad)
	require.ErrorContains(t, err, "60s")
	dec = yaml.NewDecoder(strings.NewReader("s3: {secret_access_key: x}"))
	dec.KnownFields(true)
	require.Error(t, dec.Decode(&bad), "credentials are not a field")

	for in, want := range map[string]storage.ByteSize{"5242880": 5 << 20, "5MiB": 5 << 20, "1GiB": 1 << 30, "10MB": 10e6, "64KiB": 64 << 10, "7B": 7} {
		got, err := storage.ParseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "99999999999GiB"} {
		_, err := storage.ParseByteSize(in)
		require.Error(t, err, in)
	}
	require.Equal(t, "16MiB", storage.ByteSize(16<<20).String())
	require.Equal(t, "1000B", storage.ByteSize(1000).String())
}
