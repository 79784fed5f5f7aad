// Package servingv1 is Quiver's serving API over gRPC: online feature
// lookups and pushed rows. serving.pb.go and serving_grpc.pb.go are
// generated from serving.proto (make proto) and committed, so a build
// never needs protoc; values.go adds ValuesOf, which puts a typed Go
// slice in the matching field of Values.
package servingv1
