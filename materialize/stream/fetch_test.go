package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

// TestRetryableFetch: fetch errors of a broker that is away or busy are
// ridden out; those retrying cannot mend, and the reader's own end,
// stop the partition.
func TestRetryableFetch(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("failed to dial: failed to open connection to 127.0.0.1:9092: %w", refused), true},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{kafka.NotLeaderForPartition, true},
		{kafka.LeaderNotAvailable, true},
		{kafka.RequestTimedOut, true},
		{kafka.TopicAuthorizationFailed, false},
		{kafka.InvalidMessage, true}, // a CRC mismatch: kafka-go counts it temporary, a retried fetch may read it whole
		{context.Canceled, false},
		{io.EOF, false},
	} {
		require.Equal(t, tc.want, retryableFetch(tc.err), "%v", tc.err)
	}
	require.False(t, retryableFetch(errors.Join(context.DeadlineExceeded)))
}
