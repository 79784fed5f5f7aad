package offline

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/plan"

	"github.com/quiverdata/quiver/registry"
)

// Options configure an Engine.
type Options struct {
	// DataRoot is the directory source paths resolve against (required).
	DataRoot string
	// MemoryLimit caps DuckDB's memory, e.g. "4GB" (default: DuckDB's own,
	// 80% of RAM).
	MemoryLimit string
	// TempDirectory is where DuckDB spills when over its memory limit
	// (default: DuckDB's own, next to the database; for an in-memory
	// database, .tmp in the working directory).
	TempDirectory string
	// Threads caps DuckDB's worker threads (default: one per core).
	Threads int
}

// OptionsFromConfig returns the Options a repository's quiver.yaml sets.
func OptionsFromConfig(cfg *registry.Config) Options {
	return Options{
		DataRoot:      cfg.DataRoot(),
		MemoryLimit:   cfg.Offline.DuckDB.MemoryLimit,
		TempDirectory: cfg.Abs(cfg.Offline.DuckDB.TempDirectory),
		Threads:       cfg.Offline.DuckDB.Threads,
	}
}

// Validate reports every problem in o.
func (o *Options) Validate() error {
	var errs []error
	if o.DataRoot == "" {
		errs = append(errs, errors.New("offline: DataRoot is required"))
	}
	if o.MemoryLimit != "" && !registry.IsMemorySize(o.MemoryLimit) {
		errs = append(errs, fmt.Errorf("offline: memory limit %q is not a size such as 4GB", o.MemoryLimit))
	}
	if o.Threads < 0 {
		errs = append(errs, fmt.Errorf("offline: threads %d is negative", o.Threads))
	}
	return errors.Join(errs...)
}

// Engine runs point-in-time queries with embedded DuckDB.
type Engine struct {
	opts      Options
	dataRoot  string
	connector *duckdb.Connector
	plans     plan.Cache
	// render builds training sets; Open sets DuckDB's (see renderer).
	render renderer
}

// Open starts an in-memory DuckDB configured by opts.
func Open(opts Options) (*Engine, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	root, err := filepath.Abs(opts.DataRoot)
	if err != nil {
		return nil, err
	}
	if opts.TempDirectory != "" {
		if err := os.MkdirAll(opts.TempDirectory, 0o755); err != nil {
			return nil, fmt.Errorf("create duckdb temp directory: %w", err)
		}
	}
	settings := []string{
		"SET TimeZone = 'UTC'",
		"SET file_search_path = " + quoteString(root),
		"SET preserve_insertion_order = true",
		"SET enable_progress_bar = false",
	}
	if opts.MemoryLimit != "" {
		settings = append(settings, "SET memory_limit = "+quoteString(opts.MemoryLimit))
	}
	if opts.TempDirectory != "" {
		settings = append(settings, "SET temp_directory = "+quoteString(opts.TempDirectory))
	}
	if opts.Threads > 0 {
		settings = append(settings, fmt.Sprintf("SET threads = %d", opts.Threads))
	}
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		for _, s := range settings {
			if _, err := execer.ExecContext(context.Background(), s, nil); err != nil {
				return fmt.Errorf("configure duckdb (%s): %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	e := &Engine{opts: opts, dataRoot: root, connector: connector}
	e.render = duckRenderer{e}
	return e, nil
}

// Close shuts DuckDB down. Readers still open must be released first.
func (e *Engine) Close() error { return e.connector.Close() }

// DataRoot is the absolute directory source paths resolve against.
func (e *Engine) DataRoot() string { return e.dataRoot }

// conn opens a connection of its own for one request.
func (e *Engine) conn(ctx context.Context) (*duckdb.Conn, error) {
	c, err := e.connector.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to duckdb: %w", err)
	}
	dc, ok := c.(*duckdb.Conn)
	if !ok {
		_ = c.Close() // not ours to use; the type error is what matters
		return nil, fmt.Errorf("duckdb connector returned %T", c)
	}
	return dc, nil
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
