// Command pit measures point-in-time training sets: Quiver's training set
// (to Arrow and to Parquet) beside hand-written DuckDB ASOF joins for the
// same work (the limit) and the window-function formulation that SQL
// feature stores render, over the same Parquet files, in one run.
//
// The Quiver → Arrow case also runs with the data root and the entity
// table on object storage: an S3-protocol server (gofakes3, in memory) in
// the parent process on loopback holds the same files, and the engine
// stages what a request reads into its object cache, either slices of the
// columns and row groups it needs (the default) or whole objects; with an
// empty cache (cold, the staging timed) and with one warmed by an untimed
// run (warm: listing, footers and the join).
//
// With a Spark installation ($QUIVER_SPARK_HOME, from scripts/spark.sh),
// the same training set also runs on the Spark engine against a local
// Spark Connect server (local[2], like the machine) that the parent
// starts once per distribution and warms with one untimed run, as a
// long-running server would be: streamed back as Arrow, and saved as
// Parquet written by Spark itself. Its table row shows the client's peak
// memory; the server's (the JVM's high-water mark) is printed below it.
//
// Each case runs in a child process so that its peak memory is its own;
// the table shows medians over -runs runs, the cases taking turns.
package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/bench/internal/report"
	"github.com/quiverdata/quiver/internal/s3mem"
	"github.com/quiverdata/quiver/internal/testutil/sparktest"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
)

var (
	entities = flag.Int("entities", 1_000_000, "entity (label) rows")
	rows     = flag.Int("rows", 10_000_000, "rows per feature view")
	keys     = flag.Int("keys", 1_000_000, "distinct entities")
	views    = flag.Int("views", 3, "feature views")
	runs     = flag.Int("runs", 3, "runs per case")
	threads  = flag.Int("threads", 0, "DuckDB threads (0: one per core)")
	dir      = flag.String("dir", "", "data directory (default: a new temporary one, removed at the end)")
	skip     = flag.String("skip", "", "comma-separated cases to skip")
	dists    = flag.String("dist", "uniform,hot", "key distributions to run: uniform (every entity has rows/keys rows per view), hot (1% of entities hold half the rows and half the entity rows)")
	caseName = flag.String("case", "", "run one case and print its time (used by the parent process)")
	dist     = flag.String("d", "uniform", "the distribution of one case (used by the parent process)")
	s3       = flag.String("s3", "", "the object store's endpoint, for an S3 case (used by the parent process)")
	cacheDir = flag.String("cache", "", "the object cache directory of an S3 case (used by the parent process)")
	spark    = flag.String("spark", "", "the Spark Connect server of a Spark case (used by the parent process)")
	sparkMem = flag.String("spark-memory", "6g", "the local Spark server's driver memory (spark.driver.memory)")
	cpuProf  = flag.String("cpuprofile", "", "with -case: write the case's CPU profile to `FILE`")
)

const ttlDays = 7

func main() {
	flag.Parse()
	if *caseName != "" {
		if *cpuProf != "" {
			f, err := os.Create(*cpuProf)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			defer pprof.StopCPUProfile()
		}
		res, err := runCase(*caseName)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		// Rows, the bytes the object cache fetched (S3 cases), the time.
		fmt.Println(res.rows)
		if isS3(*caseName) || *caseName == "quiver-compact" {
			fmt.Println(res.fetched)
		}
		// The child's own peak memory: the rusage of a child counts the
		// parent's resident memory at the fork (the in-memory object
		// store's files, for one), the process's VmHWM does not.
		fmt.Println("rss", peakRSS(os.Getpid()))
		fmt.Println(res.elapsed.Nanoseconds())
		return
	}
	if err := orchestrate(); err != nil {
		fmt.Fprintln(os.Stderr, "pit:", err)
		os.Exit(1)
	}
}

func orchestrate() error {
	if *dir == "" {
		d, err := os.MkdirTemp("", "quiver-bench-pit-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	fmt.Printf("point-in-time training set: %d entity rows × %d views × %d rows over %d entities, %d runs per case, median shown\n",
		*entities, *views, *rows, *keys, *runs)
	for _, d := range strings.Split(*dists, ",") {
		*dist = d
		if err := benchDist(); err != nil {
			return err
		}
	}
	return nil
}

func benchDist() error {
	start := time.Now()
	if err := generate(); err != nil {
		return fmt.Errorf("generate data: %w", err)
	}
	fmt.Printf("\n== distribution %s (data generated in %s)\n\n", *dist, report.Seconds(time.Since(start)))
	cases := []struct{ name, label string }{
		{"quiver-arrow", "Quiver training set → Arrow"},
		{"quiver-parquet", "Quiver training set → Parquet"},
		{"quiver-union", "Quiver → Arrow, union form (Spark's join)"},
		{"quiver-merge", "Quiver → Arrow, merge join over compacted copies"},
		{"quiver-merge-parquet", "Quiver → Parquet, merge join over compacted copies"},
		{"quiver-compact", "compacting every view (preparation, once per data change)"},
		{"quiver-arrow-s3-cold", "Quiver → Arrow, on S3, cold cache (slices)"},
		{"quiver-arrow-s3", "Quiver → Arrow, on S3, warm cache"},
		{"quiver-arrow-s3-whole-cold", "Quiver → Arrow, on S3, cold cache, whole objects"},
		{"raw-asof", "hand-written ASOF, same rules → Arrow (the limit)"},
		{"raw-asof-time", "hand-written ASOF on event time only → Arrow"},
		{"window", "window functions (SQL feature stores) → Arrow"},
		{"spark-arrow", "Spark engine, local[2] → Arrow"},
		{"spark-parquet", "Spark engine, local[2] → Parquet (Spark writes it)"},
	}
	skipped := func(name string) bool { return strings.Contains(","+*skip+",", ","+name+",") }
	var objects *s3mem.Server
	if slices.ContainsFunc(cases, func(c struct{ name, label string }) bool { return isS3(c.name) && !skipped(c.name) }) {
		var err error
		if objects, err = startObjects(); err != nil {
			return err
		}
		defer func() {
			if err := objects.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "pit: stop the object store:", err)
			}
		}()
	}
	var sparkServer *sparktest.Server
	if slices.ContainsFunc(cases, func(c struct{ name, label string }) bool { return isSpark(c.name) && !skipped(c.name) }) {
		if sparktest.Home() == "" {
			fmt.Println("!!! the Spark cases are skipped: set QUIVER_SPARK_HOME=$(scripts/spark.sh)")
			for _, c := range cases {
				if isSpark(c.name) {
					*skip += "," + c.name
				}
			}
		} else {
			var err error
			sparkServer, err = sparktest.Launch(context.Background(), filepath.Join(*dir, "spark"),
				sparktest.WithConf("spark.driver.memory", *sparkMem))
			if err != nil {
				return fmt.Errorf("start spark connect server: %w", err)
			}
			defer func() {
				if err := sparkServer.Stop(); err != nil {
					fmt.Fprintln(os.Stderr, "pit: stop the spark connect server:", err)
				}
			}()
			fmt.Printf("Spark Connect server %s ready in %s (spark.driver.memory %s)\n", sparkServer.Remote(), report.Seconds(sparkServer.Started), *sparkMem)
		}
	}
	// The cases take turns, one run each per round, so that a burst of
	// load on a shared machine lands on all of them rather than on one.
	type state struct {
		name, label string
		cache       string // the object cache directory of an S3 case
		ds          []time.Duration
		peak        int64
		fetched     int64 // bytes, over the timed runs
		requests    int64 // answered by the store, over the timed runs
		// copyRows and copyBytes are what one compaction wrote.
		copyRows, copyBytes int64
	}
	var active []*state
	for _, c := range cases {
		if !skipped(c.name) {
			active = append(active, &state{name: c.name, label: c.label, cache: filepath.Join(*dir, "cache", c.name)})
		}
	}
	run := func(c *state) (report.Run, error) {
		args := childArgs(c.name)
		var before int64
		if isS3(c.name) {
			args = append(args, "-s3", objects.Endpoint(), "-cache", c.cache)
			before = objects.Requests()
		}
		if isSpark(c.name) {
			args = append(args, "-spark", sparkServer.Remote())
		}
		if isMerge(c.name) {
			args = append(args, "-cache", filepath.Join(*dir, "compacted-"+*dist))
		}
		if c.name == "quiver-compact" {
			args = append(args, "-cache", c.cache)
		}
		res, err := report.Child(args...)
		if err != nil {
			return res, err
		}
		lines := strings.Split(res.Output, "\n")
		if n := len(lines); n > 0 {
			if v, ok := strings.CutPrefix(lines[n-1], "rss "); ok {
				if rss, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && rss > 0 {
					res.PeakRSS = rss
				}
				lines = lines[:n-1]
			}
		}
		if c.name == "quiver-compact" {
			if len(lines) < 2 {
				return res, fmt.Errorf("%s did not say what it wrote", c.name)
			}
			c.copyBytes, _ = strconv.ParseInt(strings.TrimSpace(lines[1]), 10, 64)
			c.copyRows, _ = strconv.ParseInt(strings.TrimSpace(lines[0]), 10, 64)
			return res, nil
		}
		if got := strings.TrimSpace(lines[0]); got != fmt.Sprint(*entities) {
			return res, fmt.Errorf("%s produced %s rows, want %d", c.name, got, *entities)
		}
		if isS3(c.name) {
			c.requests += objects.Requests() - before
			if len(lines) < 2 {
				return res, fmt.Errorf("%s did not say what it fetched", c.name)
			}
			n, err := strconv.ParseInt(strings.TrimSpace(lines[1]), 10, 64)
			if err != nil {
				return res, fmt.Errorf("%s: bytes fetched %q: %w", c.name, lines[1], err)
			}
			c.fetched += n
		}
		return res, nil
	}
	cold := func(name string) bool { return strings.HasSuffix(name, "-cold") }
	// A warm case's cache is filled by one untimed run first; a cold case
	// gets a new empty cache for each run.
	// The merge cases read copies built once, untimed; the compaction
	// case builds them anew each run, timed.
	if slices.ContainsFunc(active, func(c *state) bool { return isMerge(c.name) }) {
		res, err := report.Child("-case", "quiver-compact", "-d", *dist, "-dir", *dir, "-entities", fmt.Sprint(*entities), "-rows", fmt.Sprint(*rows),
			"-keys", fmt.Sprint(*keys), "-views", fmt.Sprint(*views), "-threads", fmt.Sprint(*threads), "-cache", filepath.Join(*dir, "compacted-"+*dist))
		if err != nil {
			return fmt.Errorf("compact for the merge cases: %w", err)
		}
		_ = res
	}
	for _, c := range active {
		if err := os.RemoveAll(c.cache); err != nil {
			return err
		}
		if (isS3(c.name) && !cold(c.name)) || isSpark(c.name) {
			if _, err := run(c); err != nil {
				return err
			}
			c.fetched, c.requests = 0, 0
		}
	}
	for r := 0; r < *runs; r++ {
		for _, c := range active {
			if cold(c.name) {
				if err := os.RemoveAll(c.cache); err != nil {
					return err
				}
			}
			res, err := run(c)
			if err != nil {
				return err
			}
			c.ds = append(c.ds, res.Elapsed)
			c.peak = max(c.peak, res.PeakRSS)
		}
	}
	medians := map[string]time.Duration{}
	var rowsOut []report.Row
	for _, c := range active {
		if err := os.RemoveAll(c.cache); err != nil {
			return err
		}
		m := report.Median(c.ds)
		medians[c.name] = m
		perRun := []string{"-", "-"}
		if c.name == "quiver-compact" {
			perRun = []string{report.Bytes(c.copyBytes) + " written", "-"}
		}
		if isS3(c.name) {
			perRun = []string{report.Bytes(c.fetched / int64(*runs)), fmt.Sprint(c.requests / int64(*runs))}
		}
		var each []string
		for _, d := range c.ds {
			each = append(each, fmt.Sprintf("%.2f", d.Seconds()))
		}
		rate := report.Rate(int64(*entities), m)
		if c.name == "quiver-compact" {
			rate = report.Rate(c.copyRows, m) + " view rows"
		}
		rowsOut = append(rowsOut, report.Row{Case: c.label, Cells: append([]string{
			report.Seconds(m), rate, report.Bytes(c.peak)}, append(perRun, strings.Join(each, " "))...)})
	}
	report.Table(os.Stdout, []string{"case", "median", "entity rows/s", "peak RSS", "fetched/run", "requests/run", "runs (s)"}, rowsOut)
	if sparkServer != nil {
		fmt.Printf("\nSpark server peak RSS (the JVM's high-water mark over every Spark run): %s\n", report.Bytes(peakRSS(sparkServer.Pid())))
	}
	fmt.Println()
	ratio := func(label, a, b, target string) {
		x, ok1 := medians[a]
		y, ok2 := medians[b]
		if ok1 && ok2 {
			fmt.Printf("%-48s %6.2f×  %s\n", label, x.Seconds()/y.Seconds(), target)
		}
	}
	ratio("Quiver → Arrow / hand-written ASOF, same rules", "quiver-arrow", "raw-asof", "(target ≤ 1.30×)")
	ratio("Quiver → Parquet / hand-written ASOF, same rules", "quiver-parquet", "raw-asof", "")
	ratio("Quiver → Arrow / ASOF on event time only", "quiver-arrow", "raw-asof-time", "(ignores rule 2's tie-breaks)")
	ratio("window functions / Quiver → Arrow", "window", "quiver-arrow", "(target ≥ 5×)")
	ratio("merge join / Quiver → Arrow (ASOF)", "quiver-merge", "quiver-arrow", "")
	ratio("hand-written ASOF, same rules / merge join", "raw-asof", "quiver-merge", "(target ≥ 3×)")
	ratio("window functions / merge join", "window", "quiver-merge", "(target > 1×)")
	ratio("merge join → Parquet / → Arrow", "quiver-merge-parquet", "quiver-merge", "")
	ratio("compaction / merge join", "quiver-compact", "quiver-merge", "(paid once per change of the source files)")
	ratio("union form / Quiver → Arrow (ASOF)", "quiver-union", "quiver-arrow", "(the join a Spark engine runs, here on DuckDB)")
	ratio("Spark engine / DuckDB engine, → Arrow", "spark-arrow", "quiver-arrow", "(one node: what a cluster must win back)")
	ratio("Spark engine / DuckDB engine, → Parquet", "spark-parquet", "quiver-parquet", "")
	ratio("Spark engine / union form on DuckDB", "spark-arrow", "quiver-union", "(the same join, two engines)")
	ratio("Quiver → Arrow on S3, cold / local", "quiver-arrow-s3-cold", "quiver-arrow", "(staging included)")
	ratio("Quiver → Arrow on S3, warm / local", "quiver-arrow-s3", "quiver-arrow", "")
	ratio("S3 cold, whole objects / slices", "quiver-arrow-s3-whole-cold", "quiver-arrow-s3-cold", "")
	if m, ok := medians["quiver-arrow"]; ok {
		fmt.Printf("%-48s %s  (target ≥ 1M/s)\n", "Quiver → Arrow throughput", report.Rate(int64(*entities), m))
	}
	if m, ok := medians["quiver-merge"]; ok {
		fmt.Printf("%-48s %s  (target ≥ 1M/s)\n", "merge join → Arrow throughput", report.Rate(int64(*entities), m))
	}
	return nil
}

// isMerge tells the cases that merge-join compacted copies.
func isMerge(name string) bool { return strings.HasPrefix(name, "quiver-merge") }

// isSpark tells the cases that run on the Spark engine.
func isSpark(name string) bool { return strings.HasPrefix(name, "spark-") }

// peakRSS is a process's peak resident memory (VmHWM), 0 when unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// isS3 tells the cases that read from the object store.
func isS3(name string) bool { return strings.Contains(name, "-s3") }

// startObjects starts the object store and uploads the current
// distribution's view files and entity table to it, under the same
// relative paths.
func startObjects() (*s3mem.Server, error) {
	ctx := context.Background()
	objects, err := s3mem.Start()
	if err != nil {
		return nil, fmt.Errorf("start the object store: %w", err)
	}
	files := []string{"entities.parquet"}
	for v := 1; v <= *views; v++ {
		m, err := filepath.Glob(filepath.Join(distDir(), "data", fmt.Sprintf("view%d", v), "*.parquet"))
		if err != nil {
			return nil, errors.Join(err, objects.Close())
		}
		for _, p := range m {
			rel, err := filepath.Rel(distDir(), p)
			if err != nil {
				return nil, errors.Join(err, objects.Close())
			}
			files = append(files, rel)
		}
	}
	var viewBytes, entBytes int64
	for _, rel := range files {
		fi, err := os.Stat(filepath.Join(distDir(), rel))
		if err != nil {
			return nil, errors.Join(err, objects.Close())
		}
		if rel == "entities.parquet" {
			entBytes = fi.Size()
		} else {
			viewBytes += fi.Size()
		}
		if err := objects.Upload(ctx, filepath.Join(distDir(), rel), objectKey(filepath.ToSlash(rel))); err != nil {
			return nil, errors.Join(err, objects.Close())
		}
	}
	fmt.Printf("object store on loopback: %d view files, %s; entity table %s\n\n", len(files)-1, report.Bytes(viewBytes), report.Bytes(entBytes))
	return objects, nil
}

// objectKey is the key of a file of the current distribution in the
// object store.
func objectKey(rel string) string { return *dist + "/" + rel }

func childArgs(name string) []string {
	return []string{"-case", name, "-d", *dist, "-dir", *dir, "-entities", fmt.Sprint(*entities), "-rows", fmt.Sprint(*rows),
		"-keys", fmt.Sprint(*keys), "-views", fmt.Sprint(*views), "-threads", fmt.Sprint(*threads)}
}

// generate writes the views (two files each) and the entity table with
// DuckDB, deterministically: every value is a hash of the row number.
func generate() error {
	marker := filepath.Join(distDir(), fmt.Sprintf("generated-%d-%d-%d-%d", *entities, *rows, *keys, *views))
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	span := 90 * 86400
	for v := 1; v <= *views; v++ {
		vdir := filepath.Join(distDir(), "data", fmt.Sprintf("view%d", v))
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return err
		}
		half := *rows / 2
		for part, bounds := range [][2]int{{0, half}, {half, *rows}} {
			q := fmt.Sprintf(`COPY (SELECT
				%[7]s AS driver_id,
				TIMESTAMP '2026-01-01' + to_seconds((hash(i, %[1]d, 't') %% %[3]d)::BIGINT) AS event_timestamp,
				TIMESTAMP '2026-01-01' + to_seconds((hash(i, %[1]d, 't') %% %[3]d)::BIGINT + (hash(i, %[1]d, 'c') %% 3600)::BIGINT) AS created,
				((hash(i, %[1]d, 'a') %% 10000) / 10000.0)::FLOAT AS f1,
				(hash(i, %[1]d, 'b') %% 1000)::BIGINT AS f2,
				((hash(i, %[1]d, 'd') %% 100000) / 1000.0)::DOUBLE AS f3
				FROM range(%[4]d, %[5]d) r(i)) TO '%[6]s' (FORMAT parquet)`,
				v, *keys, span, bounds[0], bounds[1], filepath.Join(vdir, fmt.Sprintf("part-%d.parquet", part)), keyExpr(fmt.Sprintf("i, %d", v)))
			if _, err := db.Exec(q); err != nil {
				return err
			}
		}
	}
	q := fmt.Sprintf(`COPY (SELECT
		%s AS driver_id,
		TIMESTAMP '2026-01-01' + to_seconds((hash(i, 'et') %% %d)::BIGINT) AS event_timestamp,
		(i %% 2)::INTEGER AS label
		FROM range(%d) r(i)) TO '%s' (FORMAT parquet)`, keyExpr("i, 'e'"), span, *entities, filepath.Join(distDir(), "entities.parquet"))
	if _, err := db.Exec(q); err != nil {
		return err
	}
	return os.WriteFile(marker, nil, 0o644)
}

// distDir holds the data of the current distribution.
func distDir() string { return filepath.Join(*dir, *dist) }

// keyExpr draws an entity id from the hash of seed: uniformly, or for the
// hot distribution, half the time from the first 1% of ids.
func keyExpr(seed string) string {
	uniform := fmt.Sprintf("(hash(%s, 'k') %% %d)::BIGINT", seed, *keys)
	if *dist != "hot" {
		return uniform
	}
	return fmt.Sprintf("CASE WHEN hash(%[1]s, 'h') %% 2 = 0 THEN (hash(%[1]s, 'k') %% %[2]d)::BIGINT ELSE %[3]s END", seed, max(1, *keys/100), uniform)
}

func definitions() (*registry.Definitions, error) {
	var b strings.Builder
	b.WriteString("entities: [{name: driver, join_keys: [{name: driver_id, type: int64}]}]\nsources:\n")
	for v := 1; v <= *views; v++ {
		fmt.Fprintf(&b, "  - {name: src%d, kind: parquet, path: \"view%d/*.parquet\", timestamp_field: event_timestamp, created_timestamp_field: created}\n", v, v)
	}
	b.WriteString("feature_views:\n")
	for v := 1; v <= *views; v++ {
		ttl := fmt.Sprintf("%dd", ttlDays)
		if v == *views {
			ttl = "0"
		}
		fmt.Fprintf(&b, "  - {name: view%d, entities: [driver], source: src%d, ttl: %s, features: [{name: f1, type: float32}, {name: f2, type: int64}, {name: f3, type: float64}]}\n", v, v, ttl)
	}
	defs, errs := registry.ParseDefinitions("bench", []string{"bench.yaml"}, map[string][]byte{"bench.yaml": []byte(b.String())})
	return defs, errs.Err()
}

// caseResult is what one run of a case measured.
type caseResult struct {
	elapsed time.Duration
	rows    int64
	fetched int64 // bytes the object cache downloaded (S3 cases)
}

func runCase(name string) (caseResult, error) {
	ctx := context.Background()
	switch name {
	case "quiver-compact":
		defs, err := definitions()
		if err != nil {
			return caseResult{}, err
		}
		if *cacheDir == "" {
			return caseResult{}, errors.New("case quiver-compact needs -cache")
		}
		if err := os.RemoveAll(*cacheDir); err != nil {
			return caseResult{}, err
		}
		eng, err := offline.Open(offline.Options{DataRoot: filepath.Join(distDir(), "data"), Threads: *threads, TempDirectory: filepath.Join(*dir, "tmp"), CompactDir: *cacheDir})
		if err != nil {
			return caseResult{}, err
		}
		defer eng.Close()
		start := time.Now()
		res, err := eng.Compact(ctx, defs)
		if err != nil {
			return caseResult{}, err
		}
		var rows, bytes int64
		for _, r := range res {
			rows, bytes = rows+r.Rows, bytes+r.Bytes
		}
		return caseResult{elapsed: time.Since(start), rows: rows, fetched: bytes}, nil
	case "quiver-arrow", "quiver-parquet", "quiver-union", "quiver-arrow-s3-cold", "quiver-arrow-s3", "quiver-arrow-s3-whole-cold", "spark-arrow", "spark-parquet",
		"quiver-merge", "quiver-merge-parquet":
		defs, err := definitions()
		if err != nil {
			return caseResult{}, err
		}
		opts := offline.Options{DataRoot: filepath.Join(distDir(), "data"), Threads: *threads, TempDirectory: filepath.Join(*dir, "tmp"),
			UnionJoin: name == "quiver-union"}
		entities := filepath.Join(distDir(), "entities.parquet")
		if isS3(name) {
			if *s3 == "" || *cacheDir == "" {
				return caseResult{}, fmt.Errorf("case %s needs -s3 and -cache", name)
			}
			opts.DataRoot = s3mem.URI(objectKey("data"))
			opts.Storage = storage.Config{S3: s3mem.Options(*s3)}
			opts.Cache = offline.CacheOptions{Dir: *cacheDir, WholeObjects: strings.Contains(name, "-whole")}
			entities = s3mem.URI(objectKey("entities.parquet"))
		}
		if isMerge(name) {
			opts.CompactDir = *cacheDir
		}
		if isSpark(name) {
			if *spark == "" {
				return caseResult{}, fmt.Errorf("case %s needs -spark", name)
			}
			opts.Spark = offline.SparkOptions{Remote: *spark}
		}
		eng, err := offline.Open(opts)
		if err != nil {
			return caseResult{}, err
		}
		defer eng.Close()
		var refs []string
		for v := 1; v <= *views; v++ {
			refs = append(refs, fmt.Sprintf("view%d:*", v))
		}
		req := &offline.Request{Defs: defs, Entities: offline.EntitiesFromParquet(entities), Features: refs, FullFeatureNames: true}
		start := time.Now()
		var n int64
		if strings.HasSuffix(name, "-parquet") {
			n, err = eng.WriteParquet(ctx, req, filepath.Join(distDir(), "out.parquet"))
		} else {
			n, err = drain(eng.TrainingSet(ctx, req))
		}
		if err == nil && isMerge(name) && eng.MergeJoins() == 0 {
			err = errors.New("the merge join did not run (no fresh compacted copies?)")
		}
		return caseResult{elapsed: time.Since(start), rows: n, fetched: eng.CacheStats().Fetched}, err
	case "raw-asof", "raw-asof-time", "window":
		d, n, err := rawQuery(ctx, name)
		return caseResult{elapsed: d, rows: n}, err
	}
	return caseResult{}, fmt.Errorf("unknown case %q", name)
}

// rawQuery runs hand-written SQL on DuckDB configured like the engine and
// reads the result as Arrow.
func rawQuery(ctx context.Context, name string) (time.Duration, int64, error) {
	settings := []string{"SET TimeZone = 'UTC'", "SET temp_directory = '" + filepath.Join(*dir, "tmp") + "'"}
	if *threads > 0 {
		settings = append(settings, fmt.Sprintf("SET threads = %d", *threads))
	}
	connector, err := duckdb.NewConnector("", func(ex driver.ExecerContext) error {
		for _, s := range settings {
			if _, err := ex.ExecContext(ctx, s, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	defer connector.Close()
	c, err := connector.Connect(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	ar, err := duckdb.NewArrowFromConn(c)
	if err != nil {
		return 0, 0, err
	}
	var q string
	switch name {
	case "raw-asof":
		q = asofSQL(true)
	case "raw-asof-time":
		q = asofSQL(false)
	default:
		q = windowSQL()
	}
	start := time.Now()
	n, err := drain(ar.QueryContext(ctx, q))
	return time.Since(start), n, err
}

// drain reads a result to the end and counts its rows.
func drain(rr array.RecordReader, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	var n int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
	}
	return n, rr.Err()
}

func viewPath(v int) string {
	return filepath.Join(distDir(), "data", fmt.Sprintf("view%d", v), "*.parquet")
}

func ttlCond(v int, alias string) string {
	if v == *views {
		return "TRUE"
	}
	return fmt.Sprintf("%s.event_timestamp >= e.event_timestamp - INTERVAL %d DAY", alias, ttlDays)
}

// asofSQL is the join written by hand: one ASOF LEFT JOIN per view, the
// ttl bound, input order. With rules, ties on event time go to the
// greatest created time and then the last row in source order (rule 2),
// compared as a struct, and null keys are kept from matching each other;
// without, the join compares event times alone, and which of several rows
// with the same event time it picks is up to DuckDB.
func asofSQL(rules bool) string {
	var sel, joins strings.Builder
	for v := 1; v <= *views; v++ {
		a := fmt.Sprintf("v%d", v)
		cond := ttlCond(v, a)
		if rules {
			cond += " AND e.driver_id IS NOT NULL"
		}
		for _, f := range []string{"f1", "f2", "f3"} {
			fmt.Fprintf(&sel, ", CASE WHEN %s THEN %s.%s END AS view%d__%s", cond, a, f, v, f)
		}
		if rules {
			fmt.Fprintf(&joins, ` ASOF LEFT JOIN (SELECT driver_id, event_timestamp, f1, f2, f3,
				struct_pack(t := event_timestamp, c := coalesce(created, '-infinity'::TIMESTAMP), o := (file_index::BIGINT << 40) + file_row_number) AS k
				FROM read_parquet('%s')) %s ON e.driver_id = %s.driver_id AND e.k >= %s.k`, viewPath(v), a, a, a)
		} else {
			fmt.Fprintf(&joins, " ASOF LEFT JOIN read_parquet('%s') %s ON e.driver_id = %s.driver_id AND e.event_timestamp >= %s.event_timestamp", viewPath(v), a, a, a)
		}
	}
	return fmt.Sprintf(`SELECT e.driver_id, e.event_timestamp, e.label%s FROM (SELECT *, file_row_number AS rid,
		struct_pack(t := event_timestamp, c := NULL::TIMESTAMP, o := NULL::BIGINT) AS k FROM read_parquet('%s')) e%s ORDER BY e.rid`,
		sel.String(), filepath.Join(distDir(), "entities.parquet"), joins.String())
}

// windowSQL is the formulation SQL feature stores render: per view, a range
// join on the keys within [T - ttl, T], ROW_NUMBER() over each entity row by
// event time and created time descending, keep the first; then join the
// views back to the entity rows.
func windowSQL() string {
	var ctes, sel, joins strings.Builder
	fmt.Fprintf(&ctes, "WITH e AS (SELECT *, file_row_number AS rid FROM read_parquet('%s'))", filepath.Join(distDir(), "entities.parquet"))
	for v := 1; v <= *views; v++ {
		a := fmt.Sprintf("v%d", v)
		fmt.Fprintf(&ctes, `, %[1]s AS (SELECT rid, f1, f2, f3 FROM (
			SELECT e.rid, x.f1, x.f2, x.f3, ROW_NUMBER() OVER (PARTITION BY e.rid ORDER BY x.event_timestamp DESC, x.created DESC) AS rn
			FROM e JOIN read_parquet('%[2]s') x ON e.driver_id = x.driver_id AND x.event_timestamp <= e.event_timestamp AND %[3]s
		) WHERE rn = 1)`, a, viewPath(v), ttlCond(v, "x"))
		for _, f := range []string{"f1", "f2", "f3"} {
			fmt.Fprintf(&sel, ", %s.%s AS view%d__%s", a, f, v, f)
		}
		fmt.Fprintf(&joins, " LEFT JOIN %s ON e.rid = %s.rid", a, a)
	}
	return fmt.Sprintf("%s SELECT e.driver_id, e.event_timestamp, e.label%s FROM e%s ORDER BY e.rid", ctes.String(), sel.String(), joins.String())
}
