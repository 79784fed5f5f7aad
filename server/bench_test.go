package server

import (
	"context"
	"testing"

	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
)

// BenchmarkGRPCLookup times one lookup of 4 features for 3 entities
// through the gRPC server over the embedded store.
func BenchmarkGRPCLookup(b *testing.B) {
	h := startServerB(b)
	ctx := context.Background()
	req := &servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1, 2, 3}}}, Features: []string{"stats:*"}}
	b.ResetTimer()
	for range b.N {
		if _, err := h.client.GetOnlineFeatures(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
