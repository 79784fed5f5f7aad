package sparktest_test

import (
	"context"
	"testing"
	"time"

	"github.com/apache/spark-connect-go/spark/sql"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/sparktest"
)

func TestStartServesSessions(t *testing.T) {
	srv := sparktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	session, err := sql.NewSessionBuilder().Remote(srv.Remote()).Build(ctx)
	require.NoError(t, err)
	df, err := session.Sql(ctx, "SELECT 1 AS one, current_timezone() AS tz")
	require.NoError(t, err)
	rows, err := df.Collect(ctx)
	require.NoError(t, err)
	t.Logf("first query: %v (server start %v)", time.Since(began), srv.Started)
	require.Len(t, rows, 1)
	require.Equal(t, []any{int32(1), "UTC"}, rows[0].Values())

	require.NoError(t, srv.Stop())
	select {
	case <-srv.Exited():
	default:
		t.Fatal("server still running after Stop")
	}
}
