package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
)

// ErrInvalidPush marks pushed rows that were refused; servers map it to
// InvalidArgument. Nothing of a refused push is applied.
var ErrInvalidPush = errors.New("quiver: invalid push")

// PushStream is the stream name that pushed rows carry in the offline log.
const PushStream = "push"

// PushJSON applies rows of a source, each a JSON object as a Kafka message
// of the source would hold, through the same path as the stream: online
// and the offline log, durably, before it returns. Every row is checked
// first (types, nulls, times in range); one bad row refuses the whole
// push, naming the row and field, and nothing is written.
func (a *Applier) PushJSON(ctx context.Context, source string, rows [][]byte) (int, error) {
	sp, err := a.pushSource(source)
	if err != nil {
		return 0, err
	}
	events := make([]streamlog.Event, len(rows))
	for i, row := range rows {
		events[i].Offset = streamlog.NoOffset
		err := sp.decoder.Decode(row, &events[i])
		if err == nil {
			err = a.checkTime(&events[i])
		}
		if err != nil {
			return 0, fmt.Errorf("%w: row %d: %v", ErrInvalidPush, i, err)
		}
	}
	return len(events), a.push(ctx, sp, events)
}

// PushRows is PushJSON for rows already typed: one value per schema field
// of the source, in schema order, with the Go types Decoder produces
// (int32, int64, float32, float64, bool, string, []byte, time.Time, []any
// for lists; nil for null).
func (a *Applier) PushRows(ctx context.Context, source string, rows [][]any) (int, error) {
	sp, err := a.pushSource(source)
	if err != nil {
		return 0, err
	}
	events := make([]streamlog.Event, len(rows))
	for i, row := range rows {
		if err := sp.decoder.Check(row); err != nil {
			return 0, fmt.Errorf("%w: row %d: %v", ErrInvalidPush, i, err)
		}
		events[i] = streamlog.Event{Values: row, Time: row[sp.decoder.ts].(time.Time).UTC().Truncate(time.Microsecond), Offset: streamlog.NoOffset}
		if err := a.checkTime(&events[i]); err != nil {
			return 0, fmt.Errorf("%w: row %d: %v", ErrInvalidPush, i, err)
		}
	}
	return len(events), a.push(ctx, sp, events)
}

func (a *Applier) pushSource(source string) (*sourcePlan, error) {
	sp, ok := a.sources[source]
	if !ok {
		var push []string
		for _, name := range a.Sources() {
			if a.sources[name].src.Kind == registry.SourcePush {
				push = append(push, name)
			}
		}
		return nil, fmt.Errorf("%w: %q is not a push source that an online view reads (push sources: %v)", ErrInvalidPush, source, push)
	}
	if sp.src.Kind != registry.SourcePush {
		return nil, fmt.Errorf("%w: source %s is a %s source; only push sources take pushed rows", ErrInvalidPush, source, sp.src.Kind)
	}
	return sp, nil
}

// push applies validated events so that a failure leaves nothing half
// applied where it can: the offline log's files are written and synced
// first but not committed, then the online store is written, then the
// log's manifests are committed. A failed log write applies nothing; a
// failed online write removes the log's files again (the online store may
// hold part of the push: feature views are guarded by event time, so a
// retry of the push is harmless there); only a failed manifest commit,
// after the online write, leaves the online store ahead of the log.
func (a *Applier) push(ctx context.Context, sp *sourcePlan, events []streamlog.Event) error {
	if len(events) == 0 {
		return nil
	}
	prepared, err := a.prepareLog(sp.src.Name, PushStream, 0, events, nil)
	if err != nil {
		return fmt.Errorf("write offline log (nothing was applied): %w", err)
	}
	if err := a.ApplyOnline(ctx, sp.src.Name, 0, events); err != nil {
		abortLog(prepared)
		if ee := (*EventError)(nil); errors.As(err, &ee) {
			return fmt.Errorf("%w: row %d: %v", ErrInvalidPush, ee.Index, err)
		}
		return fmt.Errorf("write online (the offline log was left unchanged): %w", err)
	}
	a.metrics.Events.WithLabelValues(sp.src.Name).Add(float64(len(events)))
	if err := a.commitLog(prepared, events, nil); err != nil {
		return fmt.Errorf("commit offline log (the rows are online but not all in the log): %w", err)
	}
	return nil
}

// Check reports whether typed values fit the source's schema: one per
// field, each of its field's Go type, required fields not null, times
// within registry.MinTime and registry.MaxTime.
func (d *Decoder) Check(values []any) error {
	if len(values) != len(d.fields) {
		return &DecodeError{Reason: fmt.Sprintf("%d values for the %d fields of source %s", len(values), len(d.fields), d.source)}
	}
	for i, v := range values {
		f := d.fields[i]
		if v == nil {
			if d.required[i] {
				return &DecodeError{Field: f.Name, Reason: "is null"}
			}
			continue
		}
		if !f.Type.List {
			if !scalarFits(f.Type.Elem, v) {
				return &DecodeError{Field: f.Name, Reason: fmt.Sprintf("want %s, got %T", f.Type, v)}
			}
			if t, ok := v.(time.Time); ok {
				if err := registry.CheckTime(t); err != nil {
					return &DecodeError{Field: f.Name, Reason: err.Error()}
				}
			}
			continue
		}
		l, ok := v.([]any)
		if !ok {
			return &DecodeError{Field: f.Name, Reason: fmt.Sprintf("want %s, got %T", f.Type, v)}
		}
		for j, x := range l {
			if x == nil || !scalarFits(f.Type.Elem, x) {
				return &DecodeError{Field: f.Name, Reason: fmt.Sprintf("element %d: want %s, got %T", j, f.Type.Elem, x)}
			}
			if t, ok := x.(time.Time); ok {
				if err := registry.CheckTime(t); err != nil {
					return &DecodeError{Field: f.Name, Reason: fmt.Sprintf("element %d: %v", j, err)}
				}
			}
		}
	}
	return nil
}

func scalarFits(s registry.Scalar, v any) bool {
	switch v.(type) {
	case int32:
		return s == registry.Int32
	case int64:
		return s == registry.Int64
	case float32:
		return s == registry.Float32
	case float64:
		return s == registry.Float64
	case bool:
		return s == registry.Bool
	case string:
		return s == registry.String
	case []byte:
		return s == registry.Bytes
	case time.Time:
		return s == registry.Timestamp
	}
	return false
}
