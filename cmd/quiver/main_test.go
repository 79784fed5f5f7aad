package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

// quiver runs the CLI in-process and returns its exit code and output.
func quiver(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func initRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rides")
	code, out, stderr := quiver(t, "init", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Created feature repository")
	return dir
}

func TestRegistryWorkflow(t *testing.T) {
	t.Setenv("QUIVER_AUTHOR", "tester")
	dir := initRepo(t)

	code, out, stderr := quiver(t, "validate", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "ok: project rides, 5 files: 2 entities, 3 sources, 5 feature views, 1 on-demand views, 1 feature services")

	code, out, stderr = quiver(t, "plan", "--repo", dir, "--json")
	require.Equal(t, 0, code, stderr)
	var plan registry.Plan
	require.NoError(t, json.Unmarshal([]byte(out), &plan))
	require.Equal(t, registry.Summary{Create: 12}, plan.Summary)
	require.Zero(t, plan.FromVersion)

	code, out, stderr = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Applied registry version 1")

	code, out, _ = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code)
	require.Contains(t, out, "No changes: registry stays at version 1")

	code, out, _ = quiver(t, "registry", "list", "--repo", dir)
	require.Equal(t, 0, code)
	require.Contains(t, out, "feature_view            driver_hourly     4 features of driver from driver_stats, ttl 48h, online")

	// Flags may follow positional arguments.
	code, out, stderr = quiver(t, "registry", "describe", "driver_trips", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "name: fare_sum_1h\n      function: sum\n      column: fare\n      window: 1h\n      type: float64")
	require.Contains(t, out, "# used by: feature_service ranking_v1")

	code, _, stderr = quiver(t, "registry", "describe", "nope", "--repo", dir)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `registry version 1 has no object named "nope"`)

	// A breaking change: plan flags it, --deny-breaking exits 3, apply refuses it.
	path := filepath.Join(dir, "features", "drivers.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, bytes.Replace(data, []byte("{name: acc_rate, type: float32"), []byte("{name: acc_rate, type: float64"), 1), 0o644))

	code, out, _ = quiver(t, "plan", "--repo", dir)
	require.Equal(t, 0, code)
	require.Contains(t, out, "features.acc_rate.type: float32 → float64   BREAKING: changes a feature's type")
	code, _, stderr = quiver(t, "plan", "--repo", dir, "--deny-breaking")
	require.Equal(t, exitBreaking, code)
	require.Contains(t, stderr, "the plan has 1 breaking change(s)")
	code, _, stderr = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--allow-breaking")
	code, out, stderr = quiver(t, "apply", "--repo", dir, "--allow-breaking", "--json")
	require.Equal(t, 0, code, stderr)
	var res struct {
		Written bool          `json:"written"`
		Info    registry.Info `json:"snapshot"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.True(t, res.Written)
	require.EqualValues(t, 2, res.Info.Version)
	require.Equal(t, "tester", res.Info.Author)

	code, out, _ = quiver(t, "registry", "history", "--repo", dir, "--json")
	require.Equal(t, 0, code)
	var hist []registry.Info
	require.NoError(t, json.Unmarshal([]byte(out), &hist))
	require.Len(t, hist, 2)

	code, out, _ = quiver(t, "registry", "describe", "driver_hourly", "--version", "1", "--repo", dir, "--json")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"name": "acc_rate",`+"\n"+`      "type": "float32"`)
}

func TestApplyRecordsGitCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not on PATH")
	}
	dir := initRepo(t)
	gitRun := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	gitRun("init", "-q")
	gitRun("add", "-A")
	gitRun("commit", "-qm", "defs")
	head := gitRun("rev-parse", "HEAD")

	code, _, stderr := quiver(t, "apply", "--repo", dir, "--author", "someone")
	require.Equal(t, 0, code, stderr)
	store, err := registry.OpenStore(context.Background(), filepath.Join(dir, ".quiver", "registry"), storage.Config{})
	require.NoError(t, err)
	snap, err := store.Latest(context.Background())
	require.NoError(t, err)
	require.Equal(t, head, snap.Commit)
	require.False(t, snap.Dirty)
	require.Equal(t, "someone", snap.Author)
}

func TestErrorsAndExitCodes(t *testing.T) {
	dir := initRepo(t)

	code, _, stderr := quiver(t, "frobnicate")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, `unknown command "frobnicate"`)

	code, _, stderr = quiver(t, "plan", "--no-such-flag")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "flag provided but not defined: -no-such-flag")

	code, _, stderr = quiver(t, "validate", "--repo", dir, "extra")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "usage: quiver validate")

	code, _, stderr = quiver(t, "validate", "--repo", t.TempDir())
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "is not a feature repository (create one with quiver init DIR)")

	code, _, stderr = quiver(t, "registry", "list", "--repo", dir)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no applied version (run quiver apply)")

	code, _, stderr = quiver(t, "init", dir)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "already holds a feature repository")

	// Several problems: one line each, then a count.
	path := filepath.Join(dir, "features", "drivers.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	bad := strings.Replace(string(data), "source: driver_stats", "source: driver_stat", 1)
	bad = strings.Replace(bad, "ttl: 48h", "ttl: 2 days", 1)
	require.NoError(t, os.WriteFile(path, []byte(bad), 0o644))
	code, _, stderr = quiver(t, "validate", "--repo", dir)
	require.Equal(t, 1, code)
	require.Equal(t, `quiver validate: features/drivers.yaml:16:5: feature_views[0].source: unknown source "driver_stat" (did you mean "driver_stats"?)
quiver validate: features/drivers.yaml:17:10: feature_views[0].ttl: "2 days" is not a duration (e.g. 72h, 7d, 30m)
quiver validate: 2 problems
`, stderr)

	code, out, _ := quiver(t, "help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "  registry      read the registry")
}

func TestTrainingSetCommand(t *testing.T) {
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	labels := filepath.Join(dir, "data", "driver_labels.parquet")

	out := filepath.Join(t.TempDir(), "ts.parquet")
	code, stdout, stderr := quiver(t, "training-set", "--repo", dir, "--entities", labels,
		"--features", "driver_hourly:conv_rate,driver_hourly:embedding", "--out", out, "--preview", "3")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Wrote 1000 rows to "+out)
	require.Contains(t, stdout, "driver_id  event_timestamp      trip_completed  surge  conv_rate")
	require.Empty(t, stderr, "no progress when stderr is not a terminal")

	// Arrow IPC on stdout, with full feature names.
	var ipcOut, errb bytes.Buffer
	code = run(context.Background(), []string{"training-set", "--repo", dir, "--entities", labels,
		"--features", "driver_hourly:*", "--full-feature-names", "--out", "-"}, &ipcOut, &errb)
	require.Equal(t, 0, code, errb.String())
	rd, err := ipc.NewReader(&ipcOut)
	require.NoError(t, err)
	defer rd.Release()
	var names []string
	for _, f := range rd.Schema().Fields() {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"driver_id", "event_timestamp", "trip_completed", "surge", "driver_hourly__conv_rate",
		"driver_hourly__acc_rate", "driver_hourly__avg_daily_trips", "driver_hourly__embedding"}, names)
	var rows int64
	for rd.Next() {
		rows += rd.RecordBatch().NumRows()
	}
	require.NoError(t, rd.Err())
	require.EqualValues(t, 1000, rows)

	// An Arrow IPC file, for serving over Flight as a saved dataset, in a
	// directory that --out creates.
	arrowOut := filepath.Join(dir, "data", "sets", "ts.arrow")
	code, stdout, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", "driver_hourly:*", "--out", arrowOut)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Wrote 1000 rows to "+arrowOut)
	fh, err := os.Open(arrowOut)
	require.NoError(t, err)
	fr, err := ipc.NewFileReader(fh)
	require.NoError(t, err)
	rows = 0
	for i := range fr.NumRecords() {
		rec, err := fr.RecordBatchAt(i)
		require.NoError(t, err)
		rows += rec.NumRows()
		rec.Release()
	}
	require.EqualValues(t, 1000, rows)
	names = names[:0]
	for _, f := range fr.Schema().Fields() {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"driver_id", "event_timestamp", "trip_completed", "surge", "conv_rate", "acc_rate", "avg_daily_trips", "embedding"}, names)
	require.NoError(t, fr.Close())
	require.NoError(t, fh.Close())
	_, err = os.Stat(arrowOut + ".tmp")
	require.ErrorIs(t, err, os.ErrNotExist, "the temporary file is renamed into place")
	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", "driver_hourly:*", "--out", arrowOut, "--preview", "2")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "--preview reads Parquet output")

	code, stdout, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", "driver_hourly:conv_rate", "--explain")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "ASOF LEFT JOIN")
	require.Contains(t, stdout, "ASOF_JOIN", "the plan follows the SQL")

	// Stream views read their offline log; nothing streamed yet, so the
	// windows are empty: counts 0, sums null.
	code, stdout, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels, "--feature-service", "ranking_v1", "--out", out, "--preview", "1")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "fare_sum_1h")
	require.Contains(t, stdout, "trips_1d")

	// On-demand features: surge comes from the entity table, conv_rate from
	// the join; written to Parquet through the Go path.
	code, stdout, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels,
		"--features", "driver_hourly:conv_rate,driver_scores:adjusted_conv", "--out", out, "--preview", "2")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Wrote 1000 rows to "+out)
	require.Contains(t, stdout, "surge  conv_rate  adjusted_conv")

	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", "driver_hourly:nope", "--out", out)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `view driver_hourly has no feature "nope"`)

	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--features", "driver_hourly:*", "--out", out)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "--entities is required")

	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", "driver_hourly:*", "--out", out, "--join-key-map", "oops")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, `--join-key-map: "oops" is not KEY=COLUMN`)
}

func TestMaterializeAndOnlineCommands(t *testing.T) {
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)

	code, _, stderr = quiver(t, "online", "--repo", dir, "--entity", "driver_id=1001", "--features", "driver_hourly:conv_rate", "--json")
	require.Equal(t, 0, code, stderr)

	code, out, stderr := quiver(t, "materialize", "--repo", dir, "--incremental")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "driver_hourly: 100 entities, 100 written, 0 older than online (from the beginning to ")

	code, out, stderr = quiver(t, "online", "--repo", dir, "--entity", "driver_id=1001,9999", "--features", "driver_hourly:conv_rate,driver_hourly:embedding", "--json")
	require.Equal(t, 0, code, stderr)
	var resp struct {
		Features []struct {
			Name     string   `json:"name"`
			Values   []any    `json:"values"`
			Statuses []string `json:"statuses"`
		} `json:"features"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	require.Len(t, resp.Features, 2)
	require.Equal(t, []string{"PRESENT", "NOT_FOUND"}, resp.Features[0].Statuses)
	require.Len(t, resp.Features[1].Values[0], 8, "the embedding")

	code, out, _ = quiver(t, "materialize", "--repo", dir, "--incremental")
	require.Equal(t, 0, code)
	require.Contains(t, out, "driver_hourly: 0 entities")

	code, out, stderr = quiver(t, "online", "--repo", dir, "--entity", "driver_id=1001,1002", "--features", "driver_hourly:conv_rate,driver_scores:adjusted_conv",
		"--request", "surge=2", "--json")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	require.Equal(t, []string{"PRESENT", "PRESENT"}, resp.Features[1].Statuses)
	require.InDelta(t, 2*resp.Features[0].Values[1].(float64), resp.Features[1].Values[1].(float64), 1e-9)
	code, _, stderr = quiver(t, "online", "--repo", dir, "--entity", "driver_id=1001", "--features", "driver_scores:adjusted_conv")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "missing request field surge (float64) of on-demand view driver_scores")

	code, _, stderr = quiver(t, "online", "--repo", dir, "--entity", "driver_id=abc", "--features", "driver_hourly:conv_rate")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `join key driver_id is int64; "abc" is not`)
	code, _, stderr = quiver(t, "online", "--repo", dir, "--features", "driver_hourly:conv_rate")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "--entity is required")
	code, _, stderr = quiver(t, "materialize", "--repo", dir, "--start", "2026-11-20", "--end", "2026-11-19")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "is before --start")
	code, _, stderr = quiver(t, "materialize", "--repo", dir, "--start", "yesterday", "--end", "now")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, `"yesterday" is not a time`)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestServeCommand(t *testing.T) {
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = quiver(t, "materialize", "--repo", dir, "--incremental")
	require.Equal(t, 0, code, stderr)

	httpAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--repo", dir, "--grpc", "off", "--flight", "off", "--http", httpAddr, "--reload", "20ms"}, io.Discard, &errb)
	}()
	body := `{"entities": {"driver_id": [1001]}, "features": ["driver_hourly:acc_rate"]}`
	var resp *http.Response
	require.Eventually(t, func() bool {
		r, err := http.Post("http://"+httpAddr+"/v1/online-features", "application/json", strings.NewReader(body))
		if err != nil {
			return false
		}
		resp = r
		return true
	}, 10*time.Second, 20*time.Millisecond)
	var out struct {
		Features []struct {
			Statuses []string `json:"statuses"`
		} `json:"features"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.NoError(t, resp.Body.Close())
	require.Equal(t, []string{"PRESENT"}, out.Features[0].Statuses)

	// quiver serve takes pushes: online at once, and in the offline log.
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)
	push := `{"source": "driver_app", "rows": [{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "` + ts + `"}]}`
	r, err := http.Post("http://"+httpAddr+"/v1/push", "application/json", strings.NewReader(push))
	require.NoError(t, err)
	pushed, _ := io.ReadAll(r.Body)
	require.NoError(t, r.Body.Close())
	require.Equal(t, http.StatusOK, r.StatusCode, string(pushed))
	r, err = http.Post("http://"+httpAddr+"/v1/online-features", "application/json",
		strings.NewReader(`{"entities": {"driver_id": [1001]}, "features": ["driver_status:battery", "driver_pings:pings_10m"]}`))
	require.NoError(t, err)
	var looked struct {
		Features []struct {
			Values   []any    `json:"values"`
			Statuses []string `json:"statuses"`
		} `json:"features"`
	}
	require.NoError(t, json.NewDecoder(r.Body).Decode(&looked))
	require.NoError(t, r.Body.Close())
	require.Len(t, looked.Features, 2)
	require.Equal(t, []any{0.5}, looked.Features[0].Values)
	require.Equal(t, []any{float64(1)}, looked.Features[1].Values)
	files, err := streamlog.Files(dataRoot(t, dir), "driver_status")
	require.NoError(t, err)
	require.Len(t, files, 1, "the push is in the offline log")
	r, err = http.Post("http://"+httpAddr+"/v1/push", "application/json", strings.NewReader(`{"source": "driver_app", "rows": [{"driver_id": 1001}]}`))
	require.NoError(t, err)
	refused, _ := io.ReadAll(r.Body)
	require.NoError(t, r.Body.Close())
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Contains(t, string(refused), "row 0")

	// A new applied version is served without a restart.
	path := filepath.Join(dir, "features", "drivers.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, bytes.Replace(data, []byte("Hourly quality statistics per driver."), []byte("Hourly driver statistics."), 1), 0o644))
	code, _, stderr = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Eventually(t, func() bool {
		r, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var ready struct {
			Version int64 `json:"registry_version"`
		}
		return json.NewDecoder(r.Body).Decode(&ready) == nil && ready.Version == 2
	}, 10*time.Second, 20*time.Millisecond, "the server picks up registry version 2")
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errb.String())
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop when its context ended")
	}
	require.Contains(t, errb.String(), "msg=serving registry_version=1")
	require.Contains(t, errb.String(), `msg="shutting down"`)
	require.Contains(t, errb.String(), `msg="registry reloaded" from_version=1 to_version=2`)
}

// --as-of builds the set as of what was known then: before any row was
// created, no features; now, the same set as without it; a bad time is a
// usage error.
func TestTrainingSetAsOf(t *testing.T) {
	dir, labels, eng := appliedQuickstart(t)
	head := func(args ...string) [][]string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "ts.parquet")
		code, _, stderr := quiver(t, append([]string{"training-set", "--repo", dir, "--entities", labels,
			"--features", "driver_hourly:conv_rate", "--out", out}, args...)...)
		require.Equal(t, 0, code, stderr)
		_, rows, err := eng.Head(context.Background(), out, 2000)
		require.NoError(t, err)
		return rows
	}
	plain := head()
	require.Equal(t, plain, head("--as-of", "now"))
	early := head("--as-of", "2000-01-01")
	require.Len(t, early, len(plain))
	conv := len(early[0]) - 1
	known := 0
	for i := range plain {
		require.Equal(t, "NULL", early[i][conv], "row %d: nothing was known in 2000", i)
		if plain[i][conv] != "NULL" {
			known++
		}
	}
	require.Positive(t, known)
	own := head("--as-of-column", "event_timestamp")
	require.Len(t, own, len(plain), "each row as of its own time")
	code, _, stderr := quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", "driver_hourly:conv_rate", "--out", "-",
		"--as-of", "now", "--as-of-column", "event_timestamp")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "give as_of or as_of_column, not both")
	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", "driver_hourly:conv_rate", "--out", "-", "--as-of", "last week")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, `--as-of: "last week" is not a time`)
}

// --spine generates the entity rows from a view: its events in a range,
// or its entities at a cadence; the flags that go with it are checked.
func TestTrainingSetSpine(t *testing.T) {
	dir, _, eng := appliedQuickstart(t)
	out := filepath.Join(t.TempDir(), "spine.parquet")
	code, stdout, stderr := quiver(t, "training-set", "--repo", dir, "--spine", "driver_hourly", "--start", "2000-01-01", "--end", "now",
		"--features", "driver_hourly:conv_rate", "--out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "rows to "+out)
	cols, events, err := eng.Head(context.Background(), out, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []string{"driver_id", "event_timestamp", "conv_rate"}, cols)
	require.NotEmpty(t, events)
	for i, r := range events {
		require.NotEqual(t, "NULL", r[2], "row %d: an event's own features are known at its time", i)
	}

	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--spine", "driver_hourly", "--start", "2000-01-01", "--end", "2000-01-03",
		"--every", "1d", "--features", "driver_hourly:conv_rate", "--out", out)
	require.Equal(t, 0, code, stderr)
	_, rows, err := eng.Head(context.Background(), out, 1<<20)
	require.NoError(t, err)
	require.Empty(t, rows, "no entity has a row in 2000")

	for args, want := range map[string]string{
		"--spine driver_hourly --start 2000-01-01":                         "--spine needs --start and --end",
		"--start 2000-01-01 --end now --entities x.parquet":                "go with --spine",
		"--spine driver_hourly --entities x.parquet":                       "not both",
		"--spine driver_hourly --start soon --end now":                     `--start: "soon" is not a time`,
		"--spine driver_hourly --start 2000-01-01 --end now --every never": `--every: "never" is not a positive duration`,
	} {
		code, _, stderr := quiver(t, append([]string{"training-set", "--repo", dir, "--features", "driver_hourly:conv_rate", "--out", out}, strings.Fields(args)...)...)
		require.Equal(t, exitUsage, code, args)
		require.Contains(t, stderr, want, args)
	}
	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--spine", "nope", "--start", "2000-01-01", "--end", "now", "--features", "driver_hourly:conv_rate", "--out", out)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `no feature view "nope"`)
}

// quiver compact builds the views' compacted copies once; training sets
// then merge-join them with the same result, explain says so, and a
// second compact finds them up to date.
func TestCompactCommand(t *testing.T) {
	dir, labels, eng := appliedQuickstart(t)
	// With an on-demand view whose request field comes from the entity
	// table: the merge join keeps the SQL join's column order.
	const features = "driver_hourly:*,driver_scores:adjusted_conv"
	head := func() [][]string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "ts.parquet")
		code, _, stderr := quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", features, "--out", out)
		require.Equal(t, 0, code, stderr)
		cols, rows, err := eng.Head(context.Background(), out, 2000)
		require.NoError(t, err)
		return append([][]string{cols}, rows...)
	}
	before := head()
	code, stdout, stderr := quiver(t, "compact", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "driver_hourly")
	require.Contains(t, stdout, "built in")
	require.Equal(t, before, head())
	code, stdout, stderr = quiver(t, "training-set", "--repo", dir, "--entities", labels, "--features", features, "--explain")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "merge join over compacted copies")
	code, stdout, _ = quiver(t, "compact", "--repo", dir, "driver_hourly")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "up to date")
	code, _, stderr = quiver(t, "compact", "--repo", dir, "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `no feature view "nope"`)
}

// appliedQuickstart is a quickstart repository with its definitions
// applied, its label table, and an engine to read training sets back.
func appliedQuickstart(t *testing.T) (dir, labels string, eng *offline.Engine) {
	t.Helper()
	dir = initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	eng, err := offline.Open(offline.Options{DataRoot: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, eng.Close()) })
	return dir, filepath.Join(dir, "data", "driver_labels.parquet"), eng
}
