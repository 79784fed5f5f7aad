// Package e2e tests the Go client (package sdk) against a real server:
// pushes and lookups over gRPC, training sets and batch features over
// Arrow Flight, on the quickstart repository.
//
// The tests live apart from package sdk so that sdk's own tests import
// nothing of the server: a module that requires sdk and runs go mod tidy
// then does not fetch DuckDB, Pebble or Kafka clients for them.
package e2e
