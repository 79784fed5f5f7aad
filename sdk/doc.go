// Package sdk is Quiver's Go client: online feature lookups over gRPC, with
// typed accessors, and an embedded mode that reads the online store of a
// feature repository directly, with no server hop. (Push and training sets
// over Arrow Flight come with their server surfaces.)
package sdk
