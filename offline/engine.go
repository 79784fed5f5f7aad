package offline

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/internal/objcache"
	"github.com/quiverdata/quiver/plan"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
)

// Options configure an Engine.
type Options struct {
	// DataRoot is the directory source paths resolve against, or an
	// s3://bucket/prefix URI (required).
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
	// Storage opens s3:// paths: sources, entity tables and the data
	// root (credentials from the AWS chain unless S3.Credentials is set).
	Storage storage.Config
	// Cache is where Parquet objects read from object storage are copied
	// for DuckDB (see docs/storage.md).
	Cache CacheOptions
	// UnionJoin renders views with features in the union form of the
	// join (union.go), the form of engines without an as-of join, rather
	// than DuckDB's ASOF join; for comparing the two (bench/pit).
	UnionJoin bool
	// Spark, when its Remote is set, builds training sets and latest rows
	// on a Spark cluster instead of DuckDB (spark.go).
	Spark SparkOptions
	// CompactDir holds the compacted copies of views (compact.go) that
	// training sets merge-join instead of sorting the views' rows; empty:
	// none are made or used.
	CompactDir string
}

// CacheOptions bound the object cache: local copies of the Parquet
// objects that sources and entity tables on object storage name, keyed by
// bucket, key, ETag and size.
type CacheOptions struct {
	// Dir is the cache directory (default: quiver/objects in
	// $XDG_CACHE_HOME or ~/.cache, else in the OS temporary directory).
	Dir string
	// MaxBytes bounds the copies' bytes; the least recently used copies
	// no running request reads are evicted beyond it (default 10 GiB).
	MaxBytes int64
	// WholeObjects copies whole objects, never slices of the columns and
	// row groups a request reads (slice.go).
	WholeObjects bool
}

// OptionsFromConfig returns the Options a repository's quiver.yaml sets.
func OptionsFromConfig(cfg *registry.Config) Options {
	return Options{
		DataRoot:      cfg.DataRoot(),
		MemoryLimit:   cfg.Offline.DuckDB.MemoryLimit,
		TempDirectory: cfg.Abs(cfg.Offline.DuckDB.TempDirectory),
		Threads:       cfg.Offline.DuckDB.Threads,
		Storage:       cfg.StorageConfig(),
		Cache:         CacheOptions{Dir: cfg.Abs(cfg.Offline.Cache.Dir), MaxBytes: int64(cfg.Offline.Cache.MaxBytes), WholeObjects: cfg.Offline.Cache.WholeObjects},
		CompactDir:    cfg.Abs(cfg.Offline.Compact.Dir),
		Spark:         SparkOptions{Remote: cfg.Offline.Spark.Remote, Conf: cfg.Offline.Spark.Conf, ClientOut: cfg.Offline.Spark.Out == registry.SparkOutClient},
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
	if isRemote(o.DataRoot) {
		if _, err := storage.ParseURI(o.DataRoot); err != nil {
			errs = append(errs, fmt.Errorf("offline: data root: %w", err))
		}
	}
	if o.Cache.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("offline: cache max bytes %d is negative", o.Cache.MaxBytes))
	}
	return errors.Join(errs...)
}

// Engine runs point-in-time queries with embedded DuckDB.
type Engine struct {
	opts     Options
	dataRoot string
	// remoteRoot: dataRoot is an s3:// URI (without a trailing slash).
	remoteRoot bool
	store      *storage.Store
	connector  *duckdb.Connector
	// merged counts the training sets the merge join built (merge.go).
	merged atomic.Int64
	// The object cache, opened on first use (objectCache).
	cacheOnce   sync.Once
	cacheOpened atomic.Bool
	cache       *objcache.Cache
	cacheErr    error
	// footers are the Parquet footers of staged objects; slices counts
	// the slices staged (slice.go).
	footers footerCache
	slices  atomic.Int64
	// join is how views with features are joined (joinForm).
	join  joinForm
	plans plan.Cache
	// render builds training sets; Open sets DuckDB's (see renderer).
	render renderer
}

// Open starts an in-memory DuckDB configured by opts.
func Open(opts Options) (*Engine, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	root, remote := strings.TrimRight(opts.DataRoot, "/"), isRemote(opts.DataRoot)
	if !remote {
		var err error
		if root, err = filepath.Abs(opts.DataRoot); err != nil {
			return nil, err
		}
	}
	if opts.TempDirectory != "" {
		if err := os.MkdirAll(opts.TempDirectory, 0o755); err != nil {
			return nil, fmt.Errorf("create duckdb temp directory: %w", err)
		}
	}
	settings := []string{
		"SET TimeZone = 'UTC'",
		"SET preserve_insertion_order = true",
		"SET enable_progress_bar = false",
		// Extensions are what is bundled; DuckDB never downloads one (a
		// query that needs httpfs fails instead).
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
	}
	if !remote {
		settings = append(settings, "SET file_search_path = "+quoteString(root))
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
	e := &Engine{opts: opts, dataRoot: root, remoteRoot: remote, store: storage.NewStore(opts.Storage), connector: connector}
	if opts.UnionJoin {
		e.join = joinUnion
	}
	e.render = duckRenderer{e}
	if opts.Spark.Remote != "" {
		r, err := newSparkRenderer(e, opts)
		if err != nil {
			_ = connector.Close() // the settings' error is the one to report
			return nil, err
		}
		e.render = r
	}
	return e, nil
}

// Close shuts DuckDB down. Readers still open must be released first.
func (e *Engine) Close() error { return e.connector.Close() }

// DataRoot is the absolute directory source paths resolve against, or
// the s3:// URI of the data root, without a trailing slash.
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
