package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quiverdata/quiver/materialize"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/storage"
)

const verifyUsage = "verify [--views V1,V2] [--sample N] [--json]"

func cmdVerify(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "verify", verifyUsage)
	views := f.String("views", "", "comma-separated stream views (default: every online stream view)")
	sample := f.Int("sample", 1000, "entities sampled per view")
	asJSON := f.Bool("json", false, "print the report as JSON")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, verifyUsage); err != nil {
		return err
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
	opts := materialize.VerifyOptions{Defs: snap.Defs, Offline: off, Online: store, DataRoot: cfg.DataRoot(),
		Store: storage.NewStore(cfg.StorageConfig()), Sample: *sample}
	if *views != "" {
		opts.Views = strings.Split(*views, ",")
	}
	rep, err := materialize.Verify(ctx, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else if err := writeVerify(e, rep); err != nil {
		return err
	}
	if !rep.OK() {
		return exitCodeError{code: exitError, err: fmt.Errorf("the online store differs from the training sets at the watermark (see the report)")}
	}
	return nil
}

func writeVerify(e *env, rep *materialize.VerifyReport) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VIEW\tFEATURE\tWATERMARK\tENTITIES\tEQUAL\tMISMATCH\tMISSING\tEXTRA")
	var examples []string
	for _, v := range rep.Views {
		at := "-"
		if !v.At.IsZero() {
			at = v.At.Format(time.RFC3339Nano)
		}
		for _, f := range v.Features {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", v.View, f.Feature, at, v.Entities, f.Equal,
				rate(f.Mismatch, v.Entities), rate(f.Missing, v.Entities), rate(f.Extra, v.Entities))
			if f.Example != "" {
				examples = append(examples, fmt.Sprintf("%s:%s: %s", v.View, f.Feature, f.Example))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, x := range examples {
		fmt.Fprintln(e.stdout, x)
	}
	return nil
}

func rate(n, of int) string {
	if of == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.2f%%)", n, 100*float64(n)/float64(of))
}
