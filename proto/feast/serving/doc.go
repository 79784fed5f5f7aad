// Package servingpb holds Feast's online serving service (package
// feast.serving: ServingService with GetOnlineFeatures and
// GetFeastServingInfo), written from Feast's published field numbers so
// that Feast's gRPC clients can call quiver serve unchanged. The .pb.go
// files are generated from ServingService.proto (make proto) and
// committed.
package servingpb
