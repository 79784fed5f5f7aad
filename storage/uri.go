package storage

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// URI schemes.
const (
	SchemeFile = "file"
	SchemeS3   = "s3"
)

// MaxKeyLen is the longest key S3 takes, in bytes.
const MaxKeyLen = 1024

// URI is a parsed storage address.
type URI struct {
	// Scheme is SchemeS3 or SchemeFile.
	Scheme string
	// Bucket is the S3 bucket; empty for local paths.
	Bucket string
	// Key is the object key (S3, possibly empty for the bucket's root,
	// possibly a glob) or the local path, slash-separated and cleaned,
	// relative or absolute as given.
	Key string
}

// ParseURI parses "s3://bucket/key", "file:///abs/path" or a local path.
// An S3 key is taken literally (no percent-decoding), as the AWS CLI takes
// it; a file URI's path is percent-decoded and must be absolute, with an
// empty host or "localhost". Local paths are cleaned but not made
// absolute. Errors wrap ErrInvalid.
func ParseURI(s string) (URI, error) {
	if s == "" {
		return URI{}, fmt.Errorf("%w: an empty path", ErrInvalid)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return URI{}, fmt.Errorf("%w: %q holds a NUL byte", ErrInvalid, s)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || strings.ContainsAny(scheme, "/\\.") {
		return URI{Scheme: SchemeFile, Key: path.Clean(s)}, nil
	}
	switch strings.ToLower(scheme) {
	case SchemeS3:
		bucket, key, _ := strings.Cut(rest, "/")
		if err := checkBucketName(bucket); err != nil {
			return URI{}, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
		}
		if len(key) > MaxKeyLen {
			return URI{}, fmt.Errorf("%w: %q: the key is longer than %d bytes", ErrInvalid, s, MaxKeyLen)
		}
		return URI{Scheme: SchemeS3, Bucket: bucket, Key: key}, nil
	case SchemeFile:
		u, err := url.Parse(s)
		if err != nil {
			return URI{}, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return URI{}, fmt.Errorf("%w: %q: a file URI names no host other than localhost", ErrInvalid, s)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return URI{}, fmt.Errorf("%w: %q: a file URI takes no user, query or fragment", ErrInvalid, s)
		}
		if !strings.HasPrefix(u.Path, "/") {
			return URI{}, fmt.Errorf("%w: %q: a file URI's path is absolute (file:///dir/file)", ErrInvalid, s)
		}
		if strings.IndexByte(u.Path, 0) >= 0 {
			return URI{}, fmt.Errorf("%w: %q holds a NUL byte", ErrInvalid, s)
		}
		return URI{Scheme: SchemeFile, Key: path.Clean(u.Path)}, nil
	default:
		return URI{}, fmt.Errorf("%w: %q: unknown scheme %q (use s3://bucket/key or a local path)", ErrInvalid, s, scheme)
	}
}

// IsLocal reports whether u is a local path.
func (u URI) IsLocal() bool { return u.Scheme == SchemeFile }

// String renders u so that ParseURI gives it back: "s3://bucket/key" or
// the local path.
func (u URI) String() string {
	if u.Scheme == SchemeS3 {
		return "s3://" + u.Bucket + "/" + u.Key
	}
	return u.Key
}

// checkBucketName applies S3's rules for bucket names: 3 to 63 lower-case
// letters, digits, dots and hyphens, starting and ending with a letter or
// digit, no two adjacent dots, not an IP address.
func checkBucketName(b string) error {
	if b == "" {
		return fmt.Errorf("no bucket (s3://bucket/key)")
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q is not 3 to 63 characters long", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("bucket name %q may hold only lower-case letters, digits, dots and hyphens", b)
		}
	}
	if !alnum(b[0]) || !alnum(b[len(b)-1]) {
		return fmt.Errorf("bucket name %q must start and end with a letter or digit", b)
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("bucket name %q holds two adjacent dots", b)
	}
	if isIPv4(b) {
		return fmt.Errorf("bucket name %q is an IP address", b)
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}
