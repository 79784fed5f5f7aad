// Package quicktest gives tests a ready quickstart repository: scaffolded
// in a temporary directory, applied, and materialized into its embedded
// online store.
package quicktest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/materialize"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
)

// Repo scaffolds the quickstart (10 drivers, one day of data ending at the
// current hour) in t.TempDir(), applies it and materializes it; it returns
// the repository and the applied snapshot. The online store is closed
// again, so the caller may open it.
func Repo(t testing.TB) (*registry.Repo, *registry.Snapshot) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, quickstart.Scaffold(dir, quickstart.GenerateOptions{Drivers: 10, Days: 1, End: time.Now().UTC().Truncate(time.Hour)}))
	repo, err := registry.LoadRepo(dir, registry.LoadOptions{})
	require.NoError(t, err)
	reg, err := repo.Config.OpenRegistry(context.Background())
	require.NoError(t, err)
	res, err := reg.Apply(context.Background(), repo.Defs, registry.ApplyOptions{})
	require.NoError(t, err)
	off, err := offline.Open(offline.OptionsFromConfig(repo.Config))
	require.NoError(t, err)
	defer func() { require.NoError(t, off.Close()) }()
	store, err := online.Open(context.Background(), repo.Config)
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	_, err = (&materialize.Materializer{Offline: off, Online: store}).Incremental(context.Background(), repo.Defs, time.Now(), materialize.Options{})
	require.NoError(t, err)
	return repo, res.Snapshot
}
