// Package sdk is Quiver's Go client for services: online feature lookups
// and pushes over gRPC, with typed accessors, and training sets and batch
// features over Arrow Flight.
//
// It is pure Go and small: it builds with CGO_ENABLED=0 and no build tags,
// and imports only the wire types shared with the server (packages wire
// and value), the generated serving API, gRPC and Arrow's Flight client;
// none of DuckDB, Pebble, Redis, Kafka or CEL. A test (internal/lint)
// keeps it so.
//
// A Client and a FlightClient are safe for concurrent use; Close each once.
// The record readers FlightClient returns belong to the caller, who
// releases them.
//
// To look features up in a feature repository's online store in process,
// with no server, use package sdk/embedded, which answers with the same
// Features.
package sdk
