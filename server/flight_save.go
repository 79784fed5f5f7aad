package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/wire"
)

// flightActions are the Flight actions the service takes, with their
// descriptions (ListActions).
var flightActions = map[string]string{
	wire.FlightActionSaveTrainingSet: `builds a training set and saves it within the data root; the body is a training_set command ` +
		`(JSON) naming "entities" (a Parquet file or glob within the data root) and "out" (a path within the data root whose ` +
		`extension picks the format: .arrow, .arrows, .feather, .ipc for an Arrow IPC file, .parquet), and optionally "overwrite": true; ` +
		`the one result's body is JSON {"path", "format", "rows", "bytes", "version"}`,
}

// actionNames lists the known actions, for messages.
func actionNames() string {
	names := make([]string, 0, len(flightActions))
	for n := range flightActions {
		names = append(names, fmt.Sprintf("%q", n))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ListActions lists the actions DoAction takes.
func (f *FlightService) ListActions(_ *flight.Empty, stream flight.FlightService_ListActionsServer) error {
	names := make([]string, 0, len(flightActions))
	for n := range flightActions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := stream.Send(&flight.ActionType{Type: n, Description: flightActions[n]}); err != nil {
			return err
		}
	}
	return nil
}

// DoAction runs an action: save_training_set builds a training set over
// entity files within the data root and saves it there, answering one
// result whose body is a wire.SavedDataset.
func (f *FlightService) DoAction(a *flight.Action, stream flight.FlightService_DoActionServer) error {
	if a.GetType() != wire.FlightActionSaveTrainingSet {
		return flightInvalid("unknown action %q (known: %s)", a.GetType(), actionNames())
	}
	cmd, err := wire.DecodeFlightCommand(a.GetBody())
	if err != nil {
		return flightInvalid("save_training_set: %v", err)
	}
	if cmd.Kind != wire.FlightTrainingSet {
		return flightInvalid("save_training_set takes a training_set command, not %q", cmd.Kind)
	}
	if cmd.Out == "" {
		return flightInvalid(`save_training_set: the command names no out (a path within the data root, such as "sets/train.arrow")`)
	}
	if cmd.Entities == "" && cmd.Spine == nil {
		return flightInvalid("save_training_set: the command names no entities (a Parquet file or glob within the data root, or a spine; to send them from the client, use DoPut)")
	}
	ents, err := f.ticketEntities(cmd, "save_training_set: ")
	if err != nil {
		return err
	}
	saved, err := f.save(stream.Context(), cmd, ents)
	if err != nil {
		return err
	}
	return stream.Send(&flight.Result{Body: saved})
}

// DoPut takes the entity stream of a training set to save: the first
// message's descriptor is a training_set command naming out (and
// optionally overwrite). The service builds and saves the set within the
// data root and answers one PutResult whose app_metadata is a
// wire.SavedDataset.
//
// Every message of the client's stream is checked (ipcguard) before it is
// decoded, and every decoded batch before it is read, as in DoExchange.
func (f *FlightService) DoPut(stream flight.FlightService_DoPutServer) error {
	rd, raw, err := f.commandStream(stream)
	if err != nil {
		return err
	}
	defer rd.Release()
	if isFeastCommand(raw) {
		return f.feastPut(stream, rd, raw)
	}
	cmd, err := wire.DecodeFlightCommand(raw)
	if err != nil {
		return flightInvalid("%v", err)
	}
	if cmd.Kind != wire.FlightTrainingSet {
		return flightInvalid("DoPut saves a training set: the descriptor's command is of kind \"training_set\", not %q", cmd.Kind)
	}
	if cmd.Out == "" {
		return flightInvalid(`DoPut saves a training set: the command names no out (a path within the data root, such as "sets/train.arrow")`)
	}
	if cmd.Entities != "" || cmd.Spine != nil {
		return flightInvalid("DoPut reads the entities from the stream; a path or a spine belongs in the save_training_set action")
	}
	saved, err := f.save(stream.Context(), cmd, offline.EntitiesFromArrow(&checkedReader{Reader: rd}))
	if err != nil {
		return err
	}
	return stream.Send(&flight.PutResult{AppMetadata: saved})
}

// save builds the command's training set over ents and saves it at its
// out path, taking a training-set slot; it returns the wire.SavedDataset
// JSON.
func (f *FlightService) save(ctx context.Context, cmd *wire.FlightCommand, ents offline.Entities) ([]byte, error) {
	path, err := f.outPath(cmd.Out)
	if err != nil {
		return nil, err
	}
	release, err := f.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := f.offline.Save(ctx, trainingRequest(cmd, f.snapshot().Defs, ents), path, offline.SaveOptions{Overwrite: cmd.Overwrite})
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		if errors.Is(err, fs.ErrExist) {
			return nil, status.Errorf(codes.AlreadyExists, `out %q exists in the data root; set "overwrite": true to replace it`, cmd.Out)
		}
		// Messages name a local file as the client did, not where the
		// server keeps it; an object is named by its URI, bucket and all.
		msg := clientMessage(err)
		if !f.remoteRoot {
			msg = strings.ReplaceAll(msg, path, cmd.Out)
		}
		return nil, status.Error(errorCode(err), msg)
	}
	saved := wire.SavedDataset{Path: cmd.Out, Format: res.Format, Rows: res.Rows, Bytes: res.Bytes,
		Version: objectVersion(storage.ObjectInfo{Size: res.Bytes, ETag: res.ETag})}
	if !f.remoteRoot {
		info, err := os.Stat(path)
		if err != nil {
			return nil, grpcError(fmt.Errorf("saved %s: %w", cmd.Out, err))
		}
		saved.Bytes, saved.Version = info.Size(), datasetVersion(info)
	}
	b, err := json.Marshal(saved)
	if err != nil {
		return nil, grpcError(err)
	}
	return b, nil
}

// outPath resolves where a save writes. Below an s3:// data root it is
// the object's URI: out is relative, without empty, "." or ".." segments
// or glob characters. Below a local root, out is relative to the data
// root, without "..", and its directory, created when missing, lies
// within the root once symbolic links are resolved; a file already
// there must be a regular file (a link is not replaced, nor written
// through).
func (f *FlightService) outPath(out string) (string, error) {
	if f.remoteRoot {
		uri, err := f.remoteURI("out", out)
		if err != nil {
			return "", err
		}
		if offline.DatasetFormat(out) == "" {
			return "", flightInvalid("out %q: its extension says no format; want %s", out, offline.DatasetFormats)
		}
		return uri, nil
	}
	if filepath.IsAbs(out) {
		return "", flightInvalid("out %q is absolute; name a path relative to the data root", out)
	}
	for _, part := range strings.Split(filepath.ToSlash(out), "/") {
		if part == ".." {
			return "", flightInvalid("out %q holds \"..\"; name a path within the data root", out)
		}
	}
	if offline.DatasetFormat(out) == "" {
		return "", flightInvalid("out %q: its extension says no format; want %s", out, offline.DatasetFormats)
	}
	abs := filepath.Join(f.dataRoot, out)
	if !within(f.dataRoot, abs) || abs == f.dataRoot {
		return "", flightInvalid("out %q is outside the data root", out)
	}
	if _, err := os.Stat(f.dataRoot); err != nil {
		return "", status.Errorf(codes.FailedPrecondition, "out %q: the server's data root does not exist", out)
	}
	root := f.realRoot()
	dir := filepath.Dir(abs)
	// The deepest directory that exists must lie within the root before
	// the rest is created under it.
	existing := dir
	for {
		if _, err := os.Lstat(existing); err == nil || existing == f.dataRoot {
			break
		}
		existing = filepath.Dir(existing)
	}
	if real, err := filepath.EvalSymlinks(existing); err != nil || !within(root, real) {
		return "", flightInvalid("out %q leads outside the data root", out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", grpcError(fmt.Errorf("out %q: create its directory: %w", out, err))
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil || !within(root, realDir) {
		return "", flightInvalid("out %q leads outside the data root", out)
	}
	path := filepath.Join(realDir, filepath.Base(abs))
	if st, err := os.Lstat(path); err == nil {
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			return "", flightInvalid("out %q is a symbolic link; a save writes a regular file", out)
		case !st.Mode().IsRegular():
			return "", flightInvalid("out %q exists and is not a regular file", out)
		}
	}
	return path, nil
}

// outMisplaced refuses out and overwrite where no set is saved: in a
// ticket, a flight info descriptor or DoExchange.
func outMisplaced(cmd *wire.FlightCommand) error {
	if cmd.Out != "" || cmd.Overwrite {
		return flightInvalid(`"out" belongs in the save_training_set action or a DoPut descriptor, which save a training set; DoGet, DoExchange and GetFlightInfo stream or describe one`)
	}
	return nil
}
