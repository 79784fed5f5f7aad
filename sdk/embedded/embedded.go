package embedded

import (
	"context"
	"sync"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/sdk"
	"github.com/quiverdata/quiver/storage"
)

// Client looks features up in a repository's online store directly, in
// process, against the latest applied registry version, and takes pushes
// there.
type Client struct {
	store    online.Store
	lookup   *online.Lookup
	defs     *registry.Definitions
	dataRoot string
	storage  storage.Config // opens an s3:// data root's bucket

	pushMu  sync.Mutex      // one push at a time, as the Applier requires
	applier *stream.Applier // set up by the first push
}

// Open opens the online store of the feature repository in dir.
// An embedded (Pebble) store admits one process at a time.
func Open(ctx context.Context, dir string) (*Client, error) {
	cfg, err := registry.LoadConfig(dir, registry.LoadOptions{})
	if err != nil {
		return nil, err
	}
	reg, err := cfg.OpenRegistry(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := reg.Latest(ctx)
	if err != nil {
		return nil, err
	}
	store, err := online.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Client{store: store, lookup: online.NewLookup(store, online.LookupOptions{}), defs: snap.Defs, dataRoot: cfg.DataRoot(), storage: cfg.StorageConfig()}, nil
}

// Close closes the store.
func (e *Client) Close() error { return e.store.Close() }

// OnlineFeatures looks features up without a server.
func (e *Client) OnlineFeatures(ctx context.Context, req sdk.Request) (*sdk.Features, error) {
	ents, reqCtx, err := req.Columns()
	if err != nil {
		return nil, err
	}
	resp, err := e.lookup.Get(ctx, e.defs, &online.Request{Entities: ents, Features: req.Features,
		FeatureService: req.FeatureService, FullFeatureNames: req.FullFeatureNames, RequestContext: reqCtx})
	if err != nil {
		return nil, err
	}
	cols := make([]sdk.Column, len(resp.Features))
	for i := range resp.Features {
		fv := &resp.Features[i]
		vals := make([]any, resp.Rows)
		for r := range vals {
			vals[r] = fv.Value(r)
		}
		cols[i] = sdk.Column{Name: fv.Name, Values: vals, Statuses: fv.Statuses, EventTimes: fv.EventTimes}
	}
	return sdk.NewFeatures(resp.Rows, cols)
}
