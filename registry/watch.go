package registry

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Watcher holds the current snapshot of a registry for a long-running
// process and swaps in newer versions as they are applied. Current is safe
// to call from any goroutine and never blocks on the store.
type Watcher struct {
	store    *Store
	interval time.Duration
	onChange func(old, new *Snapshot)
	onError  func(error)
	current  atomic.Pointer[Snapshot]
}

// WatchOptions tune a Watcher.
type WatchOptions struct {
	// Interval between polls in Run (default 2s).
	Interval time.Duration
	// OnChange is called after a new snapshot is swapped in.
	OnChange func(old, new *Snapshot)
	// OnError is called when a poll fails; the current snapshot stays.
	OnError func(error)
}

// NewWatcher loads the latest snapshot (ErrNoSnapshot when there is none)
// and returns a Watcher holding it.
func NewWatcher(ctx context.Context, store *Store, opts WatchOptions) (*Watcher, error) {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	snap, err := store.Latest(ctx)
	if err != nil {
		return nil, err
	}
	w := &Watcher{store: store, interval: opts.Interval, onChange: opts.OnChange, onError: opts.OnError}
	w.current.Store(snap)
	return w, nil
}

// Current returns the snapshot in force.
func (w *Watcher) Current() *Snapshot { return w.current.Load() }

// Poll checks the store once and swaps in a newer version if there is one.
// It reports whether the snapshot changed. A version that cannot be read
// is an error and leaves the current snapshot in place.
func (w *Watcher) Poll(ctx context.Context) (bool, error) {
	v, err := w.store.LatestVersion(ctx)
	if err != nil {
		return false, err
	}
	old := w.current.Load()
	if v <= old.Version {
		return false, nil
	}
	snap, err := w.store.Get(ctx, v)
	if err != nil {
		return false, fmt.Errorf("load registry version %d: %w", v, err)
	}
	if !w.current.CompareAndSwap(old, snap) {
		return false, nil // a concurrent Poll swapped first
	}
	if w.onChange != nil {
		w.onChange(old, snap)
	}
	return true, nil
}

// Run polls every interval until ctx is done; it returns nil then. Poll
// errors go to OnError and do not stop it.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := w.Poll(ctx); err != nil && w.onError != nil && !errors.Is(err, context.Canceled) {
				w.onError(err)
			}
		}
	}
}
