package offline

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/txtar"
	"github.com/quiverdata/quiver/registry"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata files")

// TestGoldenCases runs testdata/pit/*.txtar: definitions (defs.yaml), CSV
// data under data/ and an entity table (entities.csv), all converted to
// Parquet by DuckDB, a request, and the exact training set (or error).
func TestGoldenCases(t *testing.T) {
	txtar.RunGolden(t, filepath.Join("testdata", "pit", "*.txtar"), *update, runGolden)
}

func runGolden(t *testing.T, a *txtar.Archive) string {
	dir := t.TempDir()
	require.NoError(t, a.WriteDir(dir, ""))
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	// Every CSV becomes a Parquet file beside it, with DuckDB's type detection.
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
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
	eng := openEngine(t, filepath.Join(dir, "data"))
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
