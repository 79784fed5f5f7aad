// Command materialize measures batch materialization into Redis: rows/s
// of Quiver's offline → online run (DuckDB read of each entity's latest
// row, encoding, event-time-guarded pipelined writes) beside raw pipelined
// SETs of the same keys and bytes, with the same two pipelines in flight,
// in the same run.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quiverdata/quiver/value"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/quiverdata/quiver/bench/internal/benchredis"
	"github.com/quiverdata/quiver/bench/internal/report"
	"github.com/quiverdata/quiver/materialize"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
)

var (
	entities = flag.Int("entities", 300_000, "entities (each with 2 rows in the source)")
	runs     = flag.Int("runs", 3, "runs per case")
	chunk    = flag.Int("chunk", 5000, "rows per pipelined write")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "materialize:", err)
		os.Exit(1)
	}
}

const features = 10

func run() error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "quiver-bench-materialize-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	var cols []string
	for f := range features {
		cols = append(cols, fmt.Sprintf("((hash(i, %d) %% 10000) / 10000.0)::FLOAT AS f%d", f, f))
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT (i %% %d)::BIGINT AS driver_id,
		TIMESTAMP '2026-01-01' + to_seconds(i) AS ts, %s FROM range(%d) r(i)) TO '%s' (FORMAT parquet)`,
		*entities, strings.Join(cols, ", "), 2**entities, filepath.Join(dir, "data", "stats.parquet")))
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	var fs []string
	for f := range features {
		fs = append(fs, fmt.Sprintf("{name: f%d, type: float32}", f))
	}
	defs, errs := registry.ParseDefinitions("bench", []string{"b.yaml"}, map[string][]byte{"b.yaml": []byte(fmt.Sprintf(`
entities: [{name: driver, join_keys: [{name: driver_id, type: int64}]}]
sources: [{name: s, kind: parquet, path: stats.parquet, timestamp_field: ts}]
feature_views: [{name: stats, entities: [driver], source: s, features: [%s]}]
`, strings.Join(fs, ", ")))})
	if err := errs.Err(); err != nil {
		return err
	}
	off, err := offline.Open(offline.Options{DataRoot: filepath.Join(dir, "data"), TempDirectory: filepath.Join(dir, "tmp")})
	if err != nil {
		return err
	}
	defer off.Close()
	rs, store, err := benchredis.StartStore(ctx)
	if err != nil {
		return err
	}
	defer rs.Stop()
	defer store.Close()
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()
	end := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	// The raw reference writes the very keys and bytes Quiver writes.
	var keys []string
	var vals [][]byte
	rr, err := off.Latest(ctx, &offline.LatestRequest{Defs: defs, View: "stats", End: end})
	if err != nil {
		return err
	}
	codec := online.NewCodec(defs.FeatureView("stats"))
	fv := make([]any, features)
	for rr.Next() {
		rec := rr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			for f := range features {
				if fv[f], err = value.FromArrow(rec.Column(1+f), i); err != nil {
					return err
				}
			}
			id, err := value.FromArrow(rec.Column(0), i)
			if err != nil {
				return err
			}
			ent, err := online.EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{id})
			if err != nil {
				return err
			}
			ts, err := value.FromArrow(rec.Column(1+features), i)
			if err != nil {
				return err
			}
			at, ok := ts.(time.Time)
			if !ok {
				return fmt.Errorf("row %d: event time is %T", i, ts)
			}
			v, err := codec.Encode(nil, at, fv)
			if err != nil {
				return err
			}
			keys = append(keys, online.RedisKey(online.Key{Project: "bench", View: "stats", Entity: ent}))
			vals = append(vals, v)
		}
	}
	if err := rr.Err(); err != nil {
		return err
	}
	rr.Release()

	fmt.Printf("batch materialization into Redis: %d entities (%d source rows, %d float32 features), chunks of %d, %d runs per case\n\n",
		*entities, 2**entities, features, *chunk, *runs)
	var quiverT, rerunT, rawT []time.Duration
	for range *runs {
		if err := raw.FlushAll(ctx).Err(); err != nil {
			return err
		}
		// Into an empty store, then the same run again over the rows it
		// wrote (every guard finds a stored row and compares).
		for _, into := range []*[]time.Duration{&quiverT, &rerunT} {
			start := time.Now()
			res, err := (&materialize.Materializer{Offline: off, Online: store}).Run(ctx, defs, time.Time{}, end, materialize.Options{ChunkRows: *chunk})
			if err != nil {
				return err
			}
			*into = append(*into, time.Since(start))
			if res[0].Written != int64(*entities) {
				return fmt.Errorf("wrote %d rows, want %d", res[0].Written, *entities)
			}
		}
		if err := raw.FlushAll(ctx).Err(); err != nil {
			return err
		}
		// The same concurrency as Quiver's writers: two pipelines in flight.
		start := time.Now()
		next := make(chan int)
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				var err error
				for lo := range next {
					if err != nil {
						continue
					}
					pipe := raw.Pipeline()
					for i := lo; i < min(lo+*chunk, len(keys)); i++ {
						pipe.Set(ctx, keys[i], vals[i], 0)
					}
					_, err = pipe.Exec(ctx)
				}
				errs <- err
			}()
		}
		for lo := 0; lo < len(keys); lo += *chunk {
			next <- lo
		}
		close(next)
		for range 2 {
			if err := <-errs; err != nil {
				return err
			}
		}
		rawT = append(rawT, time.Since(start))
	}
	q, q2, r := report.Median(quiverT), report.Median(rerunT), report.Median(rawT)
	n := int64(*entities)
	row := func(name string, d time.Duration) report.Row {
		return report.Row{Case: name, Cells: []string{report.Seconds(d), report.Rate(n, d), fmt.Sprintf("%.0f%%", 100*r.Seconds()/d.Seconds())}}
	}
	report.Table(os.Stdout, []string{"case", "median", "rows/s", "of raw"}, []report.Row{
		row("Quiver materialize into an empty store", q),
		row("Quiver materialize over the rows stored", q2),
		row("raw pipelined SET of the same bytes", r),
	})
	for _, c := range []struct {
		name string
		d    time.Duration
	}{{"into an empty store", q}, {"over the rows stored", q2}} {
		verdict := "met"
		if r.Seconds()/c.d.Seconds() < 0.5 {
			verdict = "NOT met"
		}
		fmt.Printf("\nQuiver %s reaches %.0f%% of the raw write rate (target ≥ 50%%): %s", c.name, 100*r.Seconds()/c.d.Seconds(), verdict)
	}
	fmt.Println()
	return nil
}
