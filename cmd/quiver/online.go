package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quiverdata/quiver/materialize"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
)

const materializeUsage = "materialize --start T --end T | --incremental [--end T] [--views V1,V2]"

func cmdMaterialize(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "materialize", materializeUsage)
	startS := f.String("start", "", "start of the event-time range (RFC 3339, or YYYY-MM-DD), inclusive")
	endS := f.String("end", "", "end of the event-time range, inclusive (default now with --incremental)")
	incremental := f.Bool("incremental", false, "resume each view from its watermark")
	views := f.String("views", "", "comma-separated views (default: every online view over a batch source)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, materializeUsage); err != nil {
		return err
	}
	var start, end time.Time
	switch {
	case *incremental && *startS != "":
		return usageError{"--incremental takes no --start: it starts from each view's watermark"}
	case !*incremental && (*startS == "" || *endS == ""):
		return usageError{"give --start and --end, or --incremental; usage: quiver " + materializeUsage}
	}
	if *startS != "" {
		if start, err = parseTime(*startS); err != nil {
			return usageError{"--start: " + err.Error()}
		}
	}
	end = time.Now().UTC()
	if *endS != "" {
		if end, err = parseTime(*endS); err != nil {
			return usageError{"--end: " + err.Error()}
		}
	}
	if !start.IsZero() && end.Before(start) {
		return usageError{fmt.Sprintf("--end %s is before --start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))}
	}
	cfg, snap, off, err := latestWithEngine(ctx, f.repo)
	if err != nil {
		return err
	}
	defer off.Close()
	store, err := online.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	prog := startProgress(e.stderr, "materializing")
	defer prog.Stop()
	opts := materialize.Options{Views: splitList(*views), Progress: func(view string, rows int64) {
		prog.Set(fmt.Sprintf("materializing %s: %d rows", view, rows))
	}}
	m := &materialize.Materializer{Offline: off, Online: store}
	var res []materialize.Result
	if *incremental {
		res, err = m.Incremental(ctx, snap.Defs, end, opts)
	} else {
		res, err = m.Run(ctx, snap.Defs, start, end, opts)
	}
	prog.Stop()
	for _, r := range res {
		from := "the beginning"
		if !r.Start.IsZero() {
			from = r.Start.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(e.stdout, "%s: %d entities, %d written, %d older than online (from %s to %s) in %.1fs\n",
			r.View, r.Rows, r.Written, r.Skipped, from, r.End.Format(time.RFC3339Nano), r.Took.Seconds())
	}
	if err == nil && len(res) == 0 {
		fmt.Fprintln(e.stdout, "no online views over batch sources to materialize")
	}
	return err
}

// parseTime reads RFC 3339 times, naive times (UTC) and dates.
func parseTime(s string) (time.Time, error) {
	if s == "now" {
		return time.Now().UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (e.g. 2026-11-20T15:04:05Z, 2026-11-20, now)", s)
}

const onlineUsage = "online --entity KEY=V1,V2 [--entity …] --features REFS | --feature-service S [--request FIELD=V1,V2 …] [--full-feature-names] [--json]"

type entityFlag []string

func (e *entityFlag) String() string     { return strings.Join(*e, " ") }
func (e *entityFlag) Set(s string) error { *e = append(*e, s); return nil }

func cmdOnline(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "online", onlineUsage)
	var ents entityFlag
	f.Var(&ents, "entity", "join key and values, `KEY=V1,V2`; repeat for more keys")
	var reqFlags entityFlag
	f.Var(&reqFlags, "request", "request field of on-demand views and its values, `FIELD=V1,V2` (one value applies to every row); repeat for more fields")
	features := f.String("features", "", "comma-separated feature references")
	service := f.String("feature-service", "", "a feature service `NAME` instead of --features")
	full := f.Bool("full-feature-names", false, "name features view__feature")
	asJSON := f.Bool("json", false, "print JSON")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, onlineUsage); err != nil {
		return err
	}
	if len(ents) == 0 {
		return usageError{"--entity is required; usage: quiver " + onlineUsage}
	}
	cfg, snap, err := latestDefinitions(ctx, f.repo)
	if err != nil {
		return err
	}
	cols, order, err := parseEntities(snap.Defs, ents)
	if err != nil {
		return err
	}
	reqCtx, err := parseRequestContext(reqFlags, len(cols[order[0]]))
	if err != nil {
		return err
	}
	store, err := online.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	resp, err := online.NewLookup(store, online.LookupOptions{}).Get(ctx, snap.Defs, &online.Request{
		Entities: cols, Features: splitList(*features), FeatureService: *service, FullFeatureNames: *full,
		RequestContext: reqCtx,
	})
	if err != nil {
		return err
	}
	if nothingOnline(resp) {
		// Usually the store was never filled: say how to fill it (on stderr,
		// so that the table or the JSON stays as it is).
		fmt.Fprintln(e.stderr, "hint: no values online for these entities: run `quiver materialize` or push")
	}
	if *asJSON {
		return writeJSON(e.stdout, lookupJSON(cols, resp))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	header := append([]string{}, order...)
	for _, fv := range resp.Features {
		header = append(header, fv.Name)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for row := range resp.Rows {
		var cells []string
		for _, k := range order {
			cells = append(cells, fmt.Sprint(cols[k][row]))
		}
		for _, fv := range resp.Features {
			if fv.Statuses[row] != online.Present {
				cells = append(cells, fv.Statuses[row].String())
				continue
			}
			cells = append(cells, offlineCell(fv.Value(row)))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// nothingOnline reports whether every value of the response is NOT_FOUND.
func nothingOnline(resp *online.Response) bool {
	if resp.Rows == 0 || len(resp.Features) == 0 {
		return false
	}
	for _, fv := range resp.Features {
		for _, st := range fv.Statuses {
			if st != online.NotFound {
				return false
			}
		}
	}
	return true
}

func offlineCell(v any) string {
	switch x := v.(type) {
	case float32:
		return strconv.FormatFloat(float64(x), 'g', 4, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', 4, 64)
	case []float32:
		if len(x) > 3 {
			return fmt.Sprintf("%v…(%d)", x[:3], len(x))
		}
	}
	return fmt.Sprint(v)
}

// parseEntities turns KEY=V1,V2 flags into typed entity columns, using the
// join keys' declared types.
func parseEntities(defs *registry.Definitions, flags []string) (map[string][]any, []string, error) {
	types := map[string]registry.ValueType{}
	for _, en := range defs.Entities {
		for _, k := range en.JoinKeys {
			types[k.Name] = k.Type
		}
	}
	cols := map[string][]any{}
	var order []string
	for _, fl := range flags {
		key, vals, ok := strings.Cut(fl, "=")
		if !ok || key == "" {
			return nil, nil, usageError{fmt.Sprintf("--entity %q is not KEY=V1,V2", fl)}
		}
		t, known := types[key]
		if !known {
			return nil, nil, fmt.Errorf("%w: %q is not a join key of any entity", online.ErrInvalidRequest, key)
		}
		for _, v := range strings.Split(vals, ",") {
			if t == registry.TypeInt64 {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return nil, nil, fmt.Errorf("%w: join key %s is int64; %q is not", online.ErrInvalidRequest, key, v)
				}
				cols[key] = append(cols[key], n)
			} else {
				cols[key] = append(cols[key], v)
			}
		}
		order = append(order, key)
	}
	return cols, order, nil
}

// parseRequestContext turns FIELD=V1,V2 flags into request-context
// columns of rows values (one value is repeated). Values are integers,
// numbers, true/false or strings (RFC 3339 strings for timestamps); the
// lookup checks them against the fields' declared types.
func parseRequestContext(flags []string, rows int) (map[string][]any, error) {
	out := map[string][]any{}
	for _, fl := range flags {
		name, vals, ok := strings.Cut(fl, "=")
		if !ok || name == "" {
			return nil, usageError{fmt.Sprintf("--request %q is not FIELD=V1,V2", fl)}
		}
		var col []any
		for _, v := range strings.Split(vals, ",") {
			v = strings.TrimSpace(v)
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				col = append(col, n)
			} else if x, err := strconv.ParseFloat(v, 64); err == nil {
				col = append(col, x)
			} else if b, err := strconv.ParseBool(v); err == nil {
				col = append(col, b)
			} else {
				col = append(col, v)
			}
		}
		if len(col) == 1 && rows > 1 {
			for len(col) < rows {
				col = append(col, col[0])
			}
		}
		out[name] = col
	}
	return out, nil
}

type featureJSON struct {
	Name       string          `json:"name"`
	Values     []any           `json:"values"`
	Statuses   []online.Status `json:"statuses"`
	EventTimes []*time.Time    `json:"event_timestamps"`
}

func lookupJSON(cols map[string][]any, resp *online.Response) any {
	out := struct {
		Entities map[string][]any `json:"entities"`
		Features []featureJSON    `json:"features"`
	}{Entities: cols}
	for i := range resp.Features {
		fv := &resp.Features[i]
		fj := featureJSON{Name: fv.Name, Values: make([]any, resp.Rows), Statuses: fv.Statuses, EventTimes: make([]*time.Time, len(fv.EventTimes))}
		for i, t := range fv.EventTimes {
			fj.Values[i] = fv.Value(i)
			if !t.IsZero() {
				fj.EventTimes[i] = &fv.EventTimes[i]
			}
		}
		out.Features = append(out.Features, fj)
	}
	return out
}
