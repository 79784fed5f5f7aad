package server

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/quiverdata/quiver/internal/objcache"
	"github.com/quiverdata/quiver/storage"
)

// Object-store failures get the codes a client can act on: a cache too
// small is ResourceExhausted (raise max_bytes), an object replaced while
// it was read is Aborted (read again), a missing one NotFound.
func TestObjectStoreErrorCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("stage s3://b/k: %w", objcache.ErrFull), codes.ResourceExhausted},
		{fmt.Errorf("stage s3://b/k: %w", objcache.ErrChanged), codes.Aborted},
		{&storage.Error{Op: "stat", URI: "s3://b/k", Err: storage.ErrNotFound}, codes.NotFound},
		{&storage.Error{Op: "stat", URI: "s3://b/k", Err: storage.ErrBucketNotFound}, codes.NotFound},
	} {
		require.Equal(t, c.want, errorCode(c.err), "%v", c.err)
	}
}
