// Package sdk is Quiver's Go client: online feature lookups and pushes
// over gRPC, with typed accessors; training sets and batch features over
// Arrow Flight; and an embedded mode that reads the online store of a
// feature repository directly, and pushes to it, with no server hop.
package sdk
