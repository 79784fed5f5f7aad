package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"
)

const compactUsage = "compact [VIEW ...]"

// cmdCompact builds the compacted copies of the named views (every view
// that can have one by default) whose copies are missing or stale.
func cmdCompact(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "compact", compactUsage)
	views, err := f.parse(args)
	if err != nil {
		return err
	}
	_, snap, eng, err := latestWithEngine(ctx, f.repo)
	if err != nil {
		return err
	}
	defer eng.Close()
	res, err := eng.Compact(ctx, snap.Defs, views...)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "view\trows\tbytes\tfiles\tstate")
	for _, r := range res {
		state := "up to date"
		if !r.Fresh {
			state = "built in " + r.Took.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", r.View, r.Rows, r.Bytes, r.Files, state)
	}
	if len(res) == 0 {
		fmt.Fprintln(tw, "(no view can be compacted: only views with features over local Parquet sources)")
	}
	return tw.Flush()
}
