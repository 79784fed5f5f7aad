package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Flight command kinds.
const (
	// FlightTrainingSet: a point-in-time training set. In DoExchange the
	// client streams the entity table; in a ticket (DoGet) Entities names
	// a Parquet file or glob within the data root.
	FlightTrainingSet = "training_set"
	// FlightOnlineFeatures: online values for each entity batch the client
	// streams in DoExchange (batch inference).
	FlightOnlineFeatures = "online_features"
	// FlightDataset: a saved training set, an Arrow IPC file or Parquet
	// within the data root named by Path, streamed as stored (DoGet). No
	// join runs, so it streams at the transport's speed.
	FlightDataset = "dataset"
)

// FlightActionSaveTrainingSet is the Flight action that builds a training
// set and saves it within the data root. Its body is a FlightCommand of
// kind training_set with Entities and Out; its one result's body is a
// SavedDataset.
const FlightActionSaveTrainingSet = "save_training_set"

// SavedDataset describes a training set the server saved: the body of
// the save_training_set action's result, and the app_metadata of the
// PutResult that answers a DoPut.
type SavedDataset struct {
	// Path is the file, as the command named it (relative to the data
	// root); a dataset command with this path streams it.
	Path string `json:"path"`
	// Format is "arrow" (an Arrow IPC file) or "parquet".
	Format string `json:"format"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	// Version is the file's identity as saved (see FlightCommand.Version).
	Version string `json:"version"`
}

// DatasetRange is the app_metadata of each endpoint of a dataset's
// FlightInfo: the rows its ticket streams.
type DatasetRange struct {
	Rows int64 `json:"rows"`
}

// FlightCommand is the JSON of a Flight descriptor's cmd and of a ticket.
type FlightCommand struct {
	Kind             string            `json:"kind"`
	Features         []string          `json:"features,omitempty"`
	FeatureService   string            `json:"feature_service,omitempty"`
	FullFeatureNames bool              `json:"full_feature_names,omitempty"`
	TimestampColumn  string            `json:"timestamp_column,omitempty"`
	JoinKeyMap       map[string]string `json:"join_key_map,omitempty"`
	// Entities is a Parquet path or glob relative to the data root (DoGet
	// and GetFlightInfo only).
	Entities string `json:"entities,omitempty"`
	// Path is the saved dataset of kind dataset, relative to the data
	// root.
	Path string `json:"path,omitempty"`
	// Out is where a training_set command saves the set, relative to the
	// data root; its extension picks the format (.arrow, .arrows,
	// .feather, .ipc: Arrow IPC file; .parquet). Only in the
	// save_training_set action and a DoPut descriptor.
	Out string `json:"out,omitempty"`
	// Overwrite lets a save replace a file at Out (default false: an
	// existing file is an error).
	Overwrite bool `json:"overwrite,omitempty"`
	// Range is a half-open range [start, end) of a dataset's units (the
	// record batches of an Arrow IPC file, the row groups of a Parquet
	// file), in a ticket of a dataset's FlightInfo endpoint.
	Range []int64 `json:"range,omitempty"`
	// Version is the dataset file's identity when its FlightInfo was
	// read ("<size>-<mtime in Unix nanoseconds>"); a ticket whose version
	// no longer matches the file is refused.
	Version string `json:"version,omitempty"`
	// AsOf builds a training set as of what was known at this RFC 3339
	// time: source rows created later are left out (offline.Request.AsOf).
	AsOf string `json:"as_of,omitempty"`
	// AsOfColumn names an entity-table timestamp column that is each row's
	// own cutoff instead (offline.Request.AsOfColumn).
	AsOfColumn string `json:"as_of_column,omitempty"`
	// Spine generates a training set's entity rows from a feature view
	// instead of Entities (tickets and the save action only).
	Spine *FlightSpine `json:"spine,omitempty"`
}

// FlightSpine is a generated entity table (offline.Spine): a view's events
// from Start to End (RFC 3339 times), or with Every (a duration such as
// "1h" or "1d") its entities at that cadence.
type FlightSpine struct {
	View  string `json:"view"`
	Start string `json:"start"`
	End   string `json:"end"`
	Every string `json:"every,omitempty"`
}

// AsOfTime is AsOf parsed (zero when unset); DecodeFlightCommand has
// checked it.
func (c *FlightCommand) AsOfTime() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, c.AsOf)
	return t
}

// DecodeFlightCommand parses a descriptor cmd or a ticket: one JSON object
// with known fields only and a known kind.
func DecodeFlightCommand(b []byte) (*FlightCommand, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c FlightCommand
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("command is not a Quiver Flight command (JSON such as {\"kind\": \"training_set\", \"features\": [\"view:feature\"]}): %w", err)
	}
	if dec.More() {
		return nil, errors.New("command holds more than one JSON value")
	}
	switch c.Kind {
	case FlightTrainingSet, FlightOnlineFeatures:
		if c.Path != "" {
			return nil, fmt.Errorf("a %s command has no path (path names a saved dataset: kind \"dataset\")", c.Kind)
		}
		if c.Range != nil || c.Version != "" {
			return nil, fmt.Errorf("a %s command has no range or version (they name part of a saved dataset, in the tickets of its flight info: kind \"dataset\")", c.Kind)
		}
		if c.Kind == FlightOnlineFeatures && (c.Out != "" || c.Overwrite) {
			return nil, errors.New("an online_features command has no out or overwrite (a training_set command saves its set to out)")
		}
		if c.Kind == FlightOnlineFeatures && (c.AsOf != "" || c.AsOfColumn != "") {
			return nil, errors.New("an online_features command has no as_of (online values are the latest; a training_set command builds a set as of a time)")
		}
		if c.AsOf != "" {
			if _, err := time.Parse(time.RFC3339Nano, c.AsOf); err != nil {
				return nil, fmt.Errorf("as_of %q is not an RFC 3339 time with a zone (e.g. 2026-11-20T00:00:00Z)", c.AsOf)
			}
		}
		if sp := c.Spine; sp != nil {
			switch {
			case c.Kind == FlightOnlineFeatures:
				return nil, errors.New("an online_features command has no spine (a training_set command generates its entity rows with one)")
			case c.Entities != "":
				return nil, errors.New("give entities or a spine, not both")
			case sp.View == "":
				return nil, errors.New("spine needs a view: the feature view whose rows make the entity rows")
			}
			for name, v := range map[string]string{"start": sp.Start, "end": sp.End} {
				if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
					return nil, fmt.Errorf("spine %s %q is not an RFC 3339 time with a zone (e.g. 2026-11-20T00:00:00Z)", name, v)
				}
			}
		}
		if c.Overwrite && c.Out == "" {
			return nil, errors.New("overwrite needs out: the path within the data root the training set is saved to")
		}
	case FlightDataset:
		if c.Path == "" {
			return nil, errors.New(`a dataset command needs a path: a saved Arrow IPC or Parquet file within the data root`)
		}
		if len(c.Features) > 0 || c.FeatureService != "" || c.Entities != "" || c.TimestampColumn != "" || len(c.JoinKeyMap) > 0 || c.FullFeatureNames || c.Out != "" || c.Overwrite || c.AsOf != "" || c.AsOfColumn != "" || c.Spine != nil {
			return nil, errors.New("a dataset command takes only a path, and in a ticket a range and a version: the dataset is served as it was saved")
		}
		if c.Range != nil && len(c.Range) != 2 {
			// Whether the range lies within the dataset's units is for
			// the server to say, which knows how many there are.
			return nil, fmt.Errorf("range has %d numbers; want [start, end], a half-open range of the dataset's units", len(c.Range))
		}
	case "":
		return nil, errors.New(`command has no kind ("training_set", "online_features" or "dataset")`)
	default:
		return nil, fmt.Errorf("unknown command kind %q (want \"training_set\", \"online_features\" or \"dataset\")", c.Kind)
	}
	return &c, nil
}
