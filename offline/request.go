package offline

import (
	"errors"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/quiverdata/quiver/registry"
)

// DefaultTimestampColumn is the entity table's event-time column unless a
// request names another.
const DefaultTimestampColumn = "event_timestamp"

// ErrInvalidRequest marks problems with a request (as opposed to failures
// of the engine); servers map it to InvalidArgument.
var ErrInvalidRequest = errors.New("quiver: invalid training-set request")

// Entities is a training set's entity table: join-key columns, an event
// timestamp column and any other columns (labels), which are carried
// through. Build one with EntitiesFromParquet, EntitiesFromParquetFiles or
// EntitiesFromArrow, or generate one from a view with EntitiesFromSpine.
type Entities struct {
	path   string
	files  []string
	reader array.RecordReader
	spine  *Spine
	// spinePlan is the spine with its view's plan, once planned.
	spinePlan *spinePlan
}

// EntitiesFromParquetFiles reads the entity table from Parquet files, in
// the order given. The names are taken as they are: no glob is expanded
// (a server confines what a client names to its data root and passes the
// files here).
func EntitiesFromParquetFiles(paths []string) Entities {
	return Entities{files: append([]string(nil), paths...)}
}

// EntitiesFromParquet reads the entity table from a Parquet file or glob
// (files in lexical order, rows in file order).
func EntitiesFromParquet(path string) Entities { return Entities{path: path} }

// EntitiesFromArrow reads the entity table from an Arrow stream. The
// training set consumes the stream; the caller still releases it.
func EntitiesFromArrow(r array.RecordReader) Entities { return Entities{reader: r} }

// Request asks for a point-in-time-correct training set.
type Request struct {
	// Defs are the applied definitions to read views from.
	Defs *registry.Definitions
	// Entities is the entity table.
	Entities Entities
	// Features are references: view:feature or view:*.
	Features []string
	// FeatureService names a feature service instead of Features.
	FeatureService string
	// FullFeatureNames names feature columns view__feature.
	FullFeatureNames bool
	// TimestampColumn is the entity table's event time (default
	// event_timestamp).
	TimestampColumn string
	// JoinKeyMap names entity-table columns for join keys the table names
	// differently: "driver_id" → "driver" for every view, or
	// "view.driver_id" → "other_driver" for one view.
	JoinKeyMap map[string]string
	// AsOf, when set, builds the training set as of what was known then:
	// only source rows created at or before it count (rows without a
	// created time, and rows of sources without a created timestamp field,
	// by their event time instead), in every view, aggregations included.
	// A set built today with AsOf at a past date is what a model trained
	// on that date saw, whatever was backfilled since (docs/offline.md).
	AsOf time.Time
	// AsOfColumn, instead of AsOf, names an entity-table timestamp column
	// that is each row's own cutoff: only source rows known at the row's
	// cutoff count for it (a null cutoff: none). The row's own event
	// timestamp column is the usual choice: each row as of its time of
	// prediction. Views with windowed aggregations do not take it.
	AsOfColumn string
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// Internal column names; entity tables must not use the prefix.
const (
	internalPrefix = "__quiver_"
	colRow         = "__quiver_row"
	colTS          = "__quiver_ts"
	colKey         = "__quiver_key"
	colOrd         = "__quiver_ord"
	entitiesTable  = "__quiver_entities"
)
