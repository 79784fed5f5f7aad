package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
	"github.com/quiverdata/quiver/storage"
)

// versionPusher takes pushes for quiver serve through the stream
// materializer's path (online, then the offline log), planned for the
// registry version that is current at each push: a newly applied push
// source or view takes pushes without a restart.
type versionPusher struct {
	current  func() *registry.Snapshot
	store    online.Store
	dataRoot string
	storage  *storage.Store  // opens an s3:// data root's bucket
	metrics  *stream.Metrics // shared by every version's applier

	mu      sync.Mutex
	version int64
	applier *stream.Applier
}

var _ server.Pusher = (*versionPusher)(nil)

func newVersionPusher(current func() *registry.Snapshot, store online.Store, dataRoot string, st *storage.Store, metrics *stream.Metrics) *versionPusher {
	return &versionPusher{current: current, store: store, dataRoot: dataRoot, storage: st, metrics: metrics, version: -1}
}

// forCurrent returns the applier of the current registry version,
// planning it on the first push after a new version.
func (p *versionPusher) forCurrent() (*stream.Applier, error) {
	snap := p.current()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.applier != nil && p.version == snap.Version {
		return p.applier, nil
	}
	a, err := stream.NewApplierStore(context.Background(), snap.Defs, p.store, p.dataRoot, p.storage, p.metrics, nil)
	if err != nil {
		return nil, fmt.Errorf("plan the push sources of registry version %d: %w", snap.Version, err)
	}
	p.applier, p.version = a, snap.Version
	return a, nil
}

func (p *versionPusher) PushJSON(ctx context.Context, source string, rows [][]byte) (int, error) {
	a, err := p.forCurrent()
	if err != nil {
		return 0, err
	}
	return a.PushJSON(ctx, source, rows)
}

func (p *versionPusher) PushRows(ctx context.Context, source string, rows [][]any) (int, error) {
	a, err := p.forCurrent()
	if err != nil {
		return 0, err
	}
	return a.PushRows(ctx, source, rows)
}

func (p *versionPusher) Decoder(source string) (*stream.Decoder, error) {
	a, err := p.forCurrent()
	if err != nil {
		return nil, err
	}
	return a.Decoder(source)
}
