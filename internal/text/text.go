// Package text holds the helpers that keep error messages readable when
// they quote what a user or a peer sent: clipping long values and
// suggesting the nearest known name.
package text

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxQuoted is the longest value a message quotes in full: any valid name
// (at most 128 characters) is shown whole.
const MaxQuoted = 128

// Clip returns s as it may appear in an error message: unchanged when it is
// short, else its first bytes (cut on a character boundary) and its length,
// e.g. "abcabcabc…(10485760 bytes)".
func Clip(s string) string { return ClipTo(s, MaxQuoted) }

// ClipTo is Clip for values that are legitimately longer (a file path may
// be up to 4096 bytes): s unchanged up to max bytes, else cut the same way.
func ClipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	keep := max * 3 / 4
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// DidYouMean returns ` (did you mean "x"?)` for the candidate closest to s
// by edit distance when it is close enough to be a typo, else "".
func DidYouMean(s string, candidates []string) string {
	if len(s) > MaxQuoted {
		return "" // nothing that long is a typo of a name
	}
	best, bestD := "", -1
	for _, c := range candidates {
		if d := editDistance(s, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 1
	switch {
	case len(s) > 8:
		limit = 3
	case len(s) > 4:
		limit = 2
	}
	if best == "" || bestD == 0 || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", Clip(best))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
