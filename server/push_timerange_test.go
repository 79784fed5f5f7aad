package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
)

// TestPushRefusesTimesOutOfRange: a push whose event time no sink can
// hold (year -249) is refused whole over gRPC and HTTP, naming the row
// and field, and leaves the online store and the offline log as they
// were; lookups of the entities still work.
func TestPushRefusesTimesOutOfRange(t *testing.T) {
	h := startPushServer(t, Config{}, true)
	ctx := context.Background()
	bad := time.Date(-249, 3, 1, 0, 0, 0, 0, time.UTC)

	_, err := h.client.Push(ctx, &servingv1.PushRequest{Source: "driver_app",
		Columns: statusColumns([]int64{1002, 1001}, []bool{true, true}, []float64{0.5, 0.5}, []time.Time{pushAt, bad})})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "row 1: field ts: time year -249 (03-01T00:00:00Z) is out of range")

	code, out := postPush(t, h.httpBase, "", `{"source": "driver_app", "rows": [
		{"driver_id": 1002, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"},
		{"driver_id": 1001, "available": true, "battery": 0.5, "ts": -70000000000000}]}`)
	require.Equal(t, http.StatusBadRequest, code, "%v", out)
	require.Contains(t, out["error"], "row 1: field ts: -70000000000000 epoch milliseconds: time year -249")
	code, out = postPush(t, h.httpBase, "", `{"source": "driver_app", "rows": [
		{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "0001-01-01T00:00:00Z"}]}`)
	require.Equal(t, http.StatusBadRequest, code, "%v", out)
	require.Contains(t, out["error"], "row 0: field ts: time 0001-01-01T00:00:00Z is out of range")

	// Nothing of either push was applied, in either sink.
	require.Equal(t, map[string][]any{
		"available": {"NOT_FOUND", "NOT_FOUND"}, "battery": {"NOT_FOUND", "NOT_FOUND"},
		"pings_10m": {"NOT_FOUND", "NOT_FOUND"}, "min_battery_1h": {"NOT_FOUND", "NOT_FOUND"},
	}, h.features(t, ctx, 1001, 1002))
	require.Empty(t, logRows(t, h.dataRoot, "driver_status"))
	require.Empty(t, logRows(t, h.dataRoot, "driver_pings"))

	// A good push afterwards applies, and an HTTP lookup of both entities
	// answers.
	code, out = postPush(t, h.httpBase, "", `{"source": "driver_app", "rows": [
		{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}]}`)
	require.Equal(t, http.StatusOK, code, "%v", out)
	resp, err := http.Post(h.httpBase+"/v1/online-features", "application/json",
		strings.NewReader(`{"entities": {"driver_id": [1001, 1002]}, "features": ["driver_status:*"]}`))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, []string{"1001 true 0.5 2026-11-23T10:00:00Z"}, logRows(t, h.dataRoot, "driver_status"))
}
