package storage

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// GlobChars are the characters that make a key a glob pattern (Go's
// path.Match). "{" is not among them: it is an ordinary character.
const GlobChars = "*?["

// IsGlob reports whether key holds a glob character.
func IsGlob(key string) bool { return strings.ContainsAny(key, GlobChars) }

// Glob returns the objects of b whose keys match pattern (path.Match: "*"
// and "?" do not cross "/"), in lexical key order. A pattern with "**" or
// malformed brackets fails with ErrInvalid. A pattern that matches nothing
// gives an empty list, not an error. A pattern without glob characters
// matches the one key it names.
func Glob(ctx context.Context, b Bucket, pattern string) ([]ObjectInfo, error) {
	if err := CheckGlob(pattern); err != nil {
		return nil, &Error{Op: "glob", URI: b.URI(pattern), Err: err}
	}
	var objs []ObjectInfo
	var err error
	if l, ok := b.(*Local); ok {
		// Walk no deeper than the pattern reaches: a match has as many
		// slashes as the pattern.
		objs, err = l.list(ctx, GlobPrefix(pattern), strings.Count(pattern, "/"))
	} else {
		objs, err = b.List(ctx, GlobPrefix(pattern))
	}
	if err != nil {
		return nil, err
	}
	var out []ObjectInfo
	for _, o := range objs {
		if ok, _ := path.Match(pattern, o.Key); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// CheckGlob checks that pattern is a glob Glob accepts.
func CheckGlob(pattern string) error {
	if strings.Contains(pattern, "**") {
		return fmt.Errorf("%w: ** is not a glob here (use * within one level)", ErrInvalid)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("%w: %q is not a valid glob: %v", ErrInvalid, pattern, err)
	}
	return nil
}

// GlobPrefix is the part of pattern before its first glob character (with
// backslash escapes removed), the listing prefix that holds every match.
func GlobPrefix(pattern string) string {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case strings.IndexByte(GlobChars, c) >= 0:
			return b.String()
		case c == '\\' && i+1 < len(pattern):
			i++
			b.WriteByte(pattern[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
