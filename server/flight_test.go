package server

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Training sets beyond the limit wait for a slot, and give up with their
// context.
func TestFlightTrainingSetSlots(t *testing.T) {
	f, err := NewFlightService(nil, nil, nil, t.TempDir(), Limits{MaxConcurrentTrainingSets: 1})
	require.NoError(t, err)
	release, err := f.acquire(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = f.acquire(ctx)
	require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	release()
	release2, err := f.acquire(ctx)
	require.NoError(t, err, "a free slot is taken without waiting")
	release2()
}

func TestFlightStreamErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Equal(t, codes.Canceled, status.Code(streamError(ctx, io.ErrUnexpectedEOF)))
	err := streamError(context.Background(), io.EOF)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, "sent no entity stream")
	require.Equal(t, codes.InvalidArgument, status.Code(streamError(context.Background(), io.ErrUnexpectedEOF)))
}
