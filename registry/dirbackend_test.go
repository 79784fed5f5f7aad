package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Concurrent creators of one version race past the existence check to
// the link: exactly one wins, the others get ErrVersionExists, the
// version holds the winner's whole snapshot and no temporary file stays.
func TestDirBackendConcurrentCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const creators = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, creators)
	for i := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := NewDirBackend(dir)
			<-start
			errs[i] = b.Create(ctx, 7, []byte(fmt.Sprintf("snapshot of creator %02d", i)))
		}()
	}
	close(start)
	wg.Wait()
	won := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, won, "creators %d and %d both wrote version 7", won, i)
			won = i
			continue
		}
		require.ErrorIs(t, err, ErrVersionExists)
	}
	require.NotEqual(t, -1, won, "one creator writes the version")
	data, err := NewDirBackend(dir).Read(ctx, 7)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("snapshot of creator %02d", won), string(data))
	tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
	require.NoError(t, err)
	require.Empty(t, tmp, "no temporary files are left behind")
	versions, err := NewDirBackend(dir).Versions(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{7}, versions)
}
