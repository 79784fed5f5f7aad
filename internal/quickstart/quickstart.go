// Package quickstart is the quickstart feature repository that quiver init
// scaffolds, with a deterministic generator of its Parquet data.
//
// The repository models drivers and riders of a ride-hailing app: a batch
// view of hourly driver statistics from Parquet (with a ttl), a stream view
// of windowed trip aggregations from a Kafka topic, an on-demand view, and a
// feature service for a ranking model.
//
// The definitions embedded here (quiver.yaml, features/) are what quiver
// init writes; examples/quickstart holds the same files for readers, and a
// test keeps the two equal. Nothing imports examples/ (internal/lint).
package quickstart

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/quiverdata/quiver/internal/durable"
)

// Files holds the repository's definition files and quiver.yaml.
//
//go:embed quiver.yaml features/*.yaml
var Files embed.FS

// DriverStat is one row of the driver_stats source.
type DriverStat struct {
	DriverID       int64
	EventTimestamp time.Time
	Created        time.Time
	ConversionRate float32
	AccRate        float32
	AvgDailyTrips  int64
	Embedding      []float32
}

// DriverLabel is one row of the example entity table: a driver at a
// moment, and whether the trip offered then was completed.
type DriverLabel struct {
	DriverID       int64
	EventTimestamp time.Time
	TripCompleted  bool
	// Surge is the request field of the on-demand view driver_scores: the
	// surge multiplier at the time of the request.
	Surge float64
}

// Timestamp is the Arrow type of the generated timestamps: microseconds,
// in UTC (Parquet TIMESTAMP(MICROS, isAdjustedToUTC)).
var Timestamp = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// DriverStatsSchema is the schema of the driver_stats files: every column
// required, the embedding a list of required float32.
var DriverStatsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "event_timestamp", Type: Timestamp},
	{Name: "created", Type: Timestamp},
	{Name: "conversion_rate", Type: arrow.PrimitiveTypes.Float32},
	{Name: "acc_rate", Type: arrow.PrimitiveTypes.Float32},
	{Name: "avg_daily_trips", Type: arrow.PrimitiveTypes.Int64},
	{Name: "embedding", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)},
}, nil)

// DriverLabelsSchema is the schema of LabelsFile, every column required.
var DriverLabelsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "event_timestamp", Type: Timestamp},
	{Name: "trip_completed", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "surge", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// driverStatsRecord builds the record of rows in DriverStatsSchema.
func driverStatsRecord(rows []DriverStat) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, DriverStatsSchema)
	defer b.Release()
	ids, ts, created := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.TimestampBuilder), b.Field(2).(*array.TimestampBuilder)
	conv, acc, trips := b.Field(3).(*array.Float32Builder), b.Field(4).(*array.Float32Builder), b.Field(5).(*array.Int64Builder)
	emb := b.Field(6).(*array.ListBuilder)
	elems := emb.ValueBuilder().(*array.Float32Builder)
	for _, r := range rows {
		ids.Append(r.DriverID)
		ts.Append(arrow.Timestamp(r.EventTimestamp.UnixMicro()))
		created.Append(arrow.Timestamp(r.Created.UnixMicro()))
		conv.Append(r.ConversionRate)
		acc.Append(r.AccRate)
		trips.Append(r.AvgDailyTrips)
		emb.Append(true)
		elems.AppendValues(r.Embedding, nil)
	}
	return b.NewRecordBatch()
}

// driverLabelsRecord builds the record of rows in DriverLabelsSchema.
func driverLabelsRecord(rows []DriverLabel) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, DriverLabelsSchema)
	defer b.Release()
	ids, ts := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.TimestampBuilder)
	done, surge := b.Field(2).(*array.BooleanBuilder), b.Field(3).(*array.Float64Builder)
	for _, r := range rows {
		ids.Append(r.DriverID)
		ts.Append(arrow.Timestamp(r.EventTimestamp.UnixMicro()))
		done.Append(r.TripCompleted)
		surge.Append(r.Surge)
	}
	return b.NewRecordBatch()
}

// LabelsFile is the example entity table, relative to the data root.
const LabelsFile = "driver_labels.parquet"

// GenerateOptions size the generated data.
type GenerateOptions struct {
	Drivers int       // default 100; driver ids are 1001, 1002, …
	Days    int       // default 3; one Parquet file per day
	End     time.Time // end of the last day (default 2026-11-20T00:00:00Z); quiver init uses the current hour
	Seed    uint64    // default 42
}

// EmbeddingDim is the length of the generated driver embeddings.
const EmbeddingDim = 8

// Generate writes the driver_stats Parquet files under dataRoot (one file
// per day, one row per driver per hour) and an entity table of labelled
// driver moments, LabelsFile. The same options always produce the same
// bytes.
func Generate(dataRoot string, opts GenerateOptions) error {
	if opts.Drivers <= 0 {
		opts.Drivers = 100
	}
	if opts.Days <= 0 {
		opts.Days = 3
	}
	if opts.End.IsZero() {
		opts.End = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	}
	if opts.Seed == 0 {
		opts.Seed = 42
	}
	dir := filepath.Join(dataRoot, "driver_stats")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	start := opts.End.Add(-time.Duration(opts.Days) * 24 * time.Hour)
	for day := range opts.Days {
		dayStart := start.Add(time.Duration(day) * 24 * time.Hour)
		rows := make([]DriverStat, 0, 24*opts.Drivers)
		for h := range 24 {
			ts := dayStart.Add(time.Duration(h) * time.Hour)
			for d := range opts.Drivers {
				emb := make([]float32, EmbeddingDim)
				for i := range emb {
					emb[i] = float32(rng.NormFloat64())
				}
				rows = append(rows, DriverStat{
					DriverID:       int64(1001 + d),
					EventTimestamp: ts,
					Created:        ts.Add(time.Duration(5+rng.IntN(55)) * time.Minute),
					ConversionRate: float32(rng.Float64()),
					AccRate:        float32(0.5 + rng.Float64()/2),
					AvgDailyTrips:  int64(rng.IntN(40)),
					Embedding:      emb,
				})
			}
		}
		name := filepath.Join(dir, dayStart.Format("2006-01-02")+".parquet")
		if err := WriteParquet(name, driverStatsRecord(rows)); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	// Labelled moments across the data's days and the 3 days after, so
	// that some fall beyond the 48h ttl; every 50th names an unknown driver.
	span := time.Duration(opts.Days+3) * 24 * time.Hour
	labels := make([]DriverLabel, 10*opts.Drivers)
	for i := range labels {
		id := int64(1001 + rng.IntN(opts.Drivers))
		if i%50 == 49 {
			id = 9999
		}
		labels[i] = DriverLabel{
			DriverID:       id,
			EventTimestamp: start.Add(time.Duration(rng.Int64N(int64(span/time.Second))) * time.Second),
			TripCompleted:  rng.IntN(3) > 0,
			Surge:          1 + 0.25*float64(i%5),
		}
	}
	// Near the top, one of each case a training set must get right: an
	// unknown driver, and a moment 59h after the last stats (beyond 48h).
	labels[2].DriverID = 9999
	labels[4].EventTimestamp = opts.End.Add(59 * time.Hour)
	name := filepath.Join(dataRoot, LabelsFile)
	if err := WriteParquet(name, driverLabelsRecord(labels)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// WriteParquet writes rec, which it releases, as one Parquet row group
// (Snappy, no Arrow schema in the footer) through internal/durable: a
// synced temporary file renamed into place. The same record always gives
// the same bytes.
func WriteParquet(name string, rec arrow.RecordBatch) error {
	defer rec.Release()
	return durable.WriteFile(name, 0o644, func(f *os.File) error {
		w, err := pqarrow.NewFileWriter(rec.Schema(), nopCloser{f},
			parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy)),
			pqarrow.DefaultWriterProps())
		if err != nil {
			return err
		}
		if err := w.Write(rec); err != nil {
			_ = w.Close() // the write error is the one to report
			return err
		}
		return w.Close()
	})
}

// nopCloser keeps the Parquet writer from closing the file: durable syncs
// and closes it.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// GitIgnore is the scaffold's .gitignore: everything the quickstart
// generates, so that the work tree holds only definitions and stays clean
// (apply records a commit without "+dirty") however much of the tour ran.
const GitIgnore = `# Generated, not definitions: the registry, the embedded online store and
# DuckDB's spill files (.quiver/), the generated offline data and the
# stream's offline log (data/), training sets and other outputs, logs.
.quiver/
/data/
*.parquet
*.arrow
*.arrows
*.feather
*.ipc
*.log
`

// Scaffold writes the repository's files into dir, which must not already
// hold a quiver.yaml, and generates its data.
func Scaffold(dir string, opts GenerateOptions) error {
	if _, err := os.Stat(filepath.Join(dir, "quiver.yaml")); err == nil {
		return fmt.Errorf("%s already holds a feature repository (quiver.yaml exists)", dir)
	}
	err := fs.WalkDir(Files, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := Files.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(GitIgnore), 0o644); err != nil {
		return err
	}
	return Generate(filepath.Join(dir, "data"), opts)
}
