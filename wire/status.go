package wire

import "fmt"

// Status says what a looked-up value is.
type Status uint8

// Statuses of looked-up values.
const (
	// Present: the value was found and is within the view's ttl.
	Present Status = iota
	// NullValue: the row was found but the feature is null in it (for an
	// aggregation: its window holds no value).
	NullValue
	// NotFound: no row for the entity (or one written for other features,
	// or for other aggregations).
	NotFound
	// OutsideMaxAge: the row is older than the view's ttl; the value is null.
	OutsideMaxAge
	// EvaluationError: an on-demand feature's expression failed at run
	// time (division by zero, overflow, ...); the value is null.
	EvaluationError
)

var statusNames = [...]string{"PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE", "EVALUATION_ERROR"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("unknown status %q", b)
}
