package registry

import (
	"fmt"
	"os"
	"time"
)

// The valid range of event, created and other timestamp values: from
// MinTime up to, not including, MaxTime (years 1900 through 9999, UTC).
// Every sink represents it: Parquet and Arrow microseconds, RFC 3339 in
// JSON (four-digit years), the online codec and DuckDB. Times outside it
// are refused where they enter (a push, a Kafka message, a batch source
// during materialization) before anything is written.
var (
	MinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// CheckTime returns an error when t is outside [MinTime, MaxTime). The
// message names the time and the range; callers add the field and row.
func CheckTime(t time.Time) error {
	if t.Before(MinTime) || !t.Before(MaxTime) {
		return fmt.Errorf("time %s is out of range: times must be from %s through 9999-12-31T23:59:59.999999Z",
			formatAnyYear(t), MinTime.Format(time.RFC3339))
	}
	return nil
}

// formatAnyYear writes t in RFC 3339 where it can, and with its year
// spelled out where RFC 3339 cannot hold it.
func formatAnyYear(t time.Time) string {
	t = t.UTC()
	if y := t.Year(); y >= 0 && y <= 9999 {
		return t.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("year %d (%s)", t.Year(), t.Format("01-02T15:04:05.999999999Z"))
}

// ExpandEnv replaces ${VAR} and ${VAR:-default} in s from the environment,
// as quiver.yaml's values are, and $$ with $. An unset variable without a
// default is an error naming it, not an empty string.
func ExpandEnv(s string) (string, error) {
	out, missing, err := interpolate(s, os.LookupEnv)
	if err != nil {
		return "", err
	}
	if len(missing) > 0 {
		name := Clip(missing[0])
		return "", fmt.Errorf("%q: environment variable %s is not set (set it, or give a default: ${%s:-value})", Clip(s), name, name)
	}
	return out, nil
}
