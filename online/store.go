package online

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors.
var (
	// ErrInvalidRequest marks problems with a lookup request; servers map
	// it to InvalidArgument.
	ErrInvalidRequest = errors.New("quiver: invalid online request")
	// ErrUnavailable marks a store that cannot be reached; servers map it
	// to Unavailable.
	ErrUnavailable = errors.New("quiver: online store unavailable")
	// ErrCorruptRow is returned when a stored value cannot be decoded.
	ErrCorruptRow = errors.New("quiver: corrupt online row")
)

// Key names one online row: a view's features for one entity. Entity is
// the encoded join-key values (EncodeEntity).
type Key struct {
	Project string
	View    string
	Entity  []byte
}

// Row is a key and its encoded value (Codec.Encode), which starts with
// the row's event time.
type Row struct {
	Key   Key
	Value []byte
}

// WriteOptions tune Store.Write.
type WriteOptions struct {
	// Force writes every row regardless of the stored row's event time,
	// for corrections.
	Force bool
	// Expect, when set, holds one value per row: a row is written only
	// where the store still holds Expect[i] (nil: no row), whatever the
	// event times, atomically per row. The rows that find something else
	// are left alone and listed in WriteResult.Conflicts. This is the
	// compare-and-set that read-modify-write writers (aggregation tiles)
	// need when several run at once. Rows of one call must have distinct
	// keys.
	Expect [][]byte
}

// WriteResult counts what a write did.
type WriteResult struct {
	Written int // rows stored
	Skipped int // rows older than the stored row, or in conflict, left alone
	// Conflicts are the indexes of the rows that Expect refused, in order.
	Conflicts []int
}

// Store keeps encoded rows by key. Implementations: Redis (standalone and
// Cluster) and Embedded (Pebble), held to the same conformance suite.
type Store interface {
	// Write stores rows. A row whose event time is older than the stored
	// row's is skipped (atomically, on the store), unless opts.Force or
	// opts.Expect. Rows with the same key in one call apply in order.
	Write(ctx context.Context, rows []Row, opts WriteOptions) (WriteResult, error)
	// Read returns the value of each key, nil where there is none, in key
	// order, in one round trip per store node.
	Read(ctx context.Context, keys []Key) ([][]byte, error)
	// DeleteView removes every row of a view and returns how many.
	DeleteView(ctx context.Context, project, view string) (int64, error)
	// GetMeta and SetMeta keep small named values beside the rows
	// (materialization watermarks); GetMeta returns nil when unset.
	GetMeta(ctx context.Context, project, name string) ([]byte, error)
	SetMeta(ctx context.Context, project, name string, value []byte) error
	// Close releases the store's resources.
	Close() error
}

// EventTime returns the event time an encoded row starts with.
func EventTime(value []byte) (time.Time, error) {
	us, err := eventMicros(value)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(us).UTC(), nil
}
