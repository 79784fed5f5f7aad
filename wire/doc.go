// Package wire holds what Quiver's server and its clients must agree on
// beyond the generated protobuf code: the JSON commands of Arrow Flight
// descriptors and tickets, and the statuses of looked-up values.
//
// It is small and pure Go (no cgo, nothing of the server), so the Go client
// (package sdk) imports it without pulling in the server's dependencies.
package wire
