package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	case FlightDataset:
		if c.Path == "" {
			return nil, errors.New(`a dataset command needs a path: a saved Arrow IPC or Parquet file within the data root`)
		}
		if len(c.Features) > 0 || c.FeatureService != "" || c.Entities != "" || c.TimestampColumn != "" || len(c.JoinKeyMap) > 0 || c.FullFeatureNames {
			return nil, errors.New("a dataset command takes only a path: the dataset is served as it was saved")
		}
	case "":
		return nil, errors.New(`command has no kind ("training_set", "online_features" or "dataset")`)
	default:
		return nil, fmt.Errorf("unknown command kind %q (want \"training_set\", \"online_features\" or \"dataset\")", c.Kind)
	}
	return &c, nil
}
