package pqslice

import (
	"context"
	"errors"
	"io"

	"golang.org/x/sync/errgroup"
)

// Reads of the original are grouped into spans: neighbouring copies whose
// gap is at most MaxGap are read in one request (the gap is read and
// dropped), up to MaxSpan bytes a request.
const (
	MaxGap  = 1 << 20
	MaxSpan = 16 << 20
)

// span is one read of the original: [off, off+len), holding copies
// first..last (indexes into Copies).
type span struct {
	off, len    int64
	first, last int
}

// Spans returns the reads Write makes of the original, in order.
func (s *Slice) Spans() []Range {
	var out []Range
	for _, sp := range s.spans() {
		out = append(out, Range{Off: sp.off, Len: sp.len})
	}
	return out
}

func (s *Slice) spans() []span {
	var out []span
	for i, c := range s.Copies {
		if c.Len == 0 {
			continue
		}
		if n := len(out); n > 0 {
			sp := &out[n-1]
			end := sp.off + sp.len
			if c.Off >= end && c.Off-end <= MaxGap && c.Off+c.Len-sp.off <= MaxSpan {
				sp.len = c.Off + c.Len - sp.off
				sp.last = i
				continue
			}
		}
		out = append(out, span{off: c.Off, len: c.Len, first: i, last: i})
	}
	return out
}

// Write writes the slice to dst, reading the copied ranges from src (the
// original), at most concurrency spans at once.
func (s *Slice) Write(ctx context.Context, dst io.WriterAt, src io.ReaderAt, concurrency int) error {
	if _, err := dst.WriteAt(s.Head(), 0); err != nil {
		return err
	}
	// Where each copy lands.
	at := make([]int64, len(s.Copies))
	pos := int64(len(magic))
	for i, c := range s.Copies {
		at[i] = pos
		pos += c.Len
	}
	if _, err := dst.WriteAt(s.tail, pos); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for _, sp := range s.spans() {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			// A span holds one copy larger than MaxSpan, or copies that
			// fit MaxSpan together: read it in pieces of MaxSpan.
			buf := make([]byte, min(sp.len, MaxSpan))
			for off := sp.off; off < sp.off+sp.len; {
				n := min(int64(len(buf)), sp.off+sp.len-off)
				if m, err := src.ReadAt(buf[:n], off); int64(m) < n {
					if err == nil || errors.Is(err, io.EOF) {
						err = io.ErrUnexpectedEOF
					}
					return err
				}
				for i := sp.first; i <= sp.last; i++ {
					c := s.Copies[i]
					lo, hi := max(c.Off, off), min(c.Off+c.Len, off+n)
					if lo >= hi {
						continue
					}
					if _, err := dst.WriteAt(buf[lo-off:hi-off], at[i]+lo-c.Off); err != nil {
						return err
					}
				}
				off += n
			}
			return nil
		})
	}
	return g.Wait()
}
