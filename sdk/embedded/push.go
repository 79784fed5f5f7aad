package embedded

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/storage"
)

// Push applies rows of a push source to the repository's online store and
// offline log, in process, as a server's push does (see sdk.Client.Push);
// the rows are checked exactly as HTTP POST /v1/push checks its JSON rows.
// Float values must be finite. The stream path (and the view directories
// of the offline log) are set up on the first push; pushes through one
// Client run one at a time.
func (e *Client) Push(ctx context.Context, source string, rows []map[string]any) (int, error) {
	raw := make([][]byte, len(rows))
	for i, row := range rows {
		b, err := json.Marshal(row)
		if err != nil {
			return 0, fmt.Errorf("push %s: row %d: %w", source, i, err)
		}
		raw[i] = b
	}
	e.pushMu.Lock()
	defer e.pushMu.Unlock()
	if e.applier == nil {
		a, err := stream.NewApplierStore(ctx, e.defs, e.store, e.dataRoot, storage.NewStore(e.storage), nil, nil)
		if err != nil {
			return 0, fmt.Errorf("push %s: %w", source, err)
		}
		e.applier = a
	}
	return e.applier.PushJSON(ctx, source, raw)
}
