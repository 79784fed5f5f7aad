package offline

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/txtar"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata files")

// TestGoldenCases runs testdata/pit/*.txtar: definitions (defs.yaml), CSV
// data under data/ and an entity table (entities.csv), all converted to
// Parquet by DuckDB, stream-log batches (stream/<view>/<batch>.csv, see
// writeStreamLogs), a request, and the exact training set (or error).
func TestGoldenCases(t *testing.T) {
	txtar.RunGolden(t, filepath.Join("testdata", "pit", "*.txtar"), *update, func(t *testing.T, a *txtar.Archive) string {
		return runGolden(t, a, openEngine)
	})
}

// runGolden runs a case on the engine open opens over its data root.
func runGolden(t *testing.T, a *txtar.Archive, open func(testing.TB, string) *Engine) string {
	dir := t.TempDir()
	require.NoError(t, a.WriteDir(dir, ""))
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	// Every CSV becomes a Parquet file beside it, with DuckDB's type
	// detection; stream logs are written below.
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p == filepath.Join(dir, "stream") {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".csv") {
			return err
		}
		out := strings.TrimSuffix(p, ".csv") + ".parquet"
		_, err = db.Exec(fmt.Sprintf("COPY (SELECT * FROM read_csv(%s, header = true)) TO %s (FORMAT parquet)", quoteString(p), quoteString(out)))
		if err != nil {
			return fmt.Errorf("convert %s: %w", p, err)
		}
		return os.Remove(p)
	})
	require.NoError(t, err)

	defsYAML, ok := a.Get("defs.yaml")
	require.True(t, ok, "case needs defs.yaml")
	defs, errs := registry.ParseDefinitions("golden", []string{"defs.yaml"}, map[string][]byte{"defs.yaml": defsYAML})
	require.NoError(t, errs.Err())
	writeStreamLogs(t, a, defs, filepath.Join(dir, "data"))

	req := &Request{Defs: defs, Entities: EntitiesFromParquet(filepath.Join(dir, "entities.parquet"))}
	reqText, _ := a.Get("request")
	for _, line := range strings.Split(string(reqText), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "features":
			req.Features = strings.Split(v, ",")
		case "feature_service":
			req.FeatureService = v
		case "full_feature_names":
			req.FullFeatureNames = v == "true"
		case "timestamp_column":
			req.TimestampColumn = v
		case "join_key_map":
			req.JoinKeyMap = map[string]string{}
			for _, kv := range strings.Split(v, ",") {
				from, to, _ := strings.Cut(kv, "=")
				req.JoinKeyMap[from] = to
			}
		default:
			t.Fatalf("unknown request key %q", k)
		}
	}
	eng := open(t, filepath.Join(dir, "data"))
	rr, err := eng.TrainingSet(context.Background(), req)
	if err != nil {
		return "error: " + strings.ReplaceAll(err.Error(), dir, "DIR") + "\n" + invalidNote(err)
	}
	schema, rows := readAll(t, rr)
	var b strings.Builder
	var names []string
	for _, f := range schema.Fields() {
		names = append(names, f.Name)
	}
	b.WriteString(strings.Join(names, " | ") + "\n")
	for _, row := range rows {
		var cells []string
		for _, n := range names {
			cells = append(cells, render(row[n]))
		}
		b.WriteString(strings.Join(cells, " | ") + "\n")
	}
	return b.String()
}

func invalidNote(err error) string {
	if errors.Is(err, ErrInvalidRequest) {
		return "(invalid request)\n"
	}
	return ""
}

func render(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999")
	}
	return fmt.Sprint(v)
}

// writeStreamLogs logs the archive's stream/<view>/<batch>.csv files
// through streamlog, as the streaming materializer does, so that the logs
// have their manifests and the source order is the log's own. Each file is
// one batch of stream <batch> (partition 0, offsets counting from 0 per
// view), one event per CSV row. The header names fields of the view
// source's declared schema (others are null); a cell is parsed as its
// field's type, empty means null, and a list is written [a,b] (quoted).
// A file named uncommitted/<name>.parquet.csv is instead written as a
// Parquet file that no manifest names, which training sets must not read.
func writeStreamLogs(t *testing.T, a *txtar.Archive, defs *registry.Definitions, dataRoot string) {
	t.Helper()
	offsets := map[string]int64{}
	for _, f := range a.Files {
		rest, ok := strings.CutPrefix(f.Name, "stream/")
		if !ok {
			continue
		}
		view, batch, ok := strings.Cut(rest, "/")
		require.True(t, ok, "%s: name stream/<view>/<batch>.csv", f.Name)
		batch, ok = strings.CutSuffix(batch, ".csv")
		require.True(t, ok, "%s: name stream/<view>/<batch>.csv", f.Name)
		v := defs.FeatureView(view)
		require.NotNil(t, v, "%s: unknown view %s", f.Name, view)
		src := defs.Source(v.Source)
		records, err := csv.NewReader(bytes.NewReader(f.Data)).ReadAll()
		require.NoError(t, err, f.Name)
		require.NotEmpty(t, records, "%s: needs a header", f.Name)
		col := map[string]int{}
		for i, name := range records[0] {
			col[name] = i
		}
		var events []streamlog.Event
		for _, rec := range records[1:] {
			ev := streamlog.Event{Values: make([]any, len(src.Schema)), Offset: offsets[view]}
			offsets[view]++
			for i, field := range src.Schema {
				if c, ok := col[field.Name]; ok && rec[c] != "" {
					ev.Values[i], err = parseCell(field.Type, rec[c])
					require.NoError(t, err, "%s: field %s", f.Name, field.Name)
				}
				if field.Name == src.TimestampField && ev.Values[i] != nil {
					ev.Time = ev.Values[i].(time.Time)
				}
			}
			events = append(events, ev)
		}
		l, err := streamlog.Open(dataRoot, view, src.Schema)
		require.NoError(t, err)
		if name, ok := strings.CutPrefix(batch, "uncommitted/"); ok {
			// A batch whose commit never happened: its Parquet file is in
			// place, its manifest is not.
			tmp := t.TempDir()
			tl, err := streamlog.Open(tmp, view, src.Schema)
			require.NoError(t, err)
			m, err := tl.Append(streamlog.Batch{Stream: "x", Events: events})
			require.NoError(t, err)
			data, err := os.ReadFile(filepath.Join(streamlog.ViewDir(tmp, view), m.Files[0].Path))
			require.NoError(t, err)
			dst := filepath.Join(streamlog.ViewDir(dataRoot, view), filepath.Dir(m.Files[0].Path), name)
			require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
			require.NoError(t, os.WriteFile(dst, data, 0o644))
			continue
		}
		_, err = l.Append(streamlog.Batch{Stream: batch, Events: events})
		require.NoError(t, err)
	}
}

// parseCell parses a stream-log CSV cell as a value of type typ.
func parseCell(typ registry.ValueType, s string) (any, error) {
	if typ.List {
		inner, ok := strings.CutPrefix(s, "[")
		if inner, ok = strings.CutSuffix(inner, "]"); !ok {
			return nil, fmt.Errorf("list %q is not [a,b]", s)
		}
		elem := registry.ValueType{Elem: typ.Elem}
		var parts []string
		if inner != "" {
			parts = strings.Split(inner, ",")
		}
		var out []any
		for _, p := range parts {
			v, err := parseCell(elem, strings.TrimSpace(p))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	switch typ.Elem {
	case registry.Int32:
		n, err := strconv.ParseInt(s, 10, 32)
		return int32(n), err
	case registry.Int64:
		return strconv.ParseInt(s, 10, 64)
	case registry.Float32:
		f, err := strconv.ParseFloat(s, 32)
		return float32(f), err
	case registry.Float64:
		return strconv.ParseFloat(s, 64)
	case registry.Bool:
		return strconv.ParseBool(s)
	case registry.String:
		return s, nil
	case registry.Bytes:
		return []byte(s), nil
	case registry.Timestamp:
		for _, layout := range []string{"2006-01-02 15:04:05.999999", time.RFC3339Nano, time.DateOnly} {
			if ts, err := time.Parse(layout, s); err == nil {
				return ts.UTC(), nil
			}
		}
		return nil, fmt.Errorf("%q is not a timestamp (2006-01-02 15:04:05.999999)", s)
	}
	return nil, fmt.Errorf("no parser for %s", typ)
}
