// Package embedded is the Go client's embedded mode: it looks features up
// in a feature repository's online store directly, in process, against the
// latest applied registry version, and pushes to it, with no server hop.
// It answers with the same sdk.Request and sdk.Features as the gRPC
// client (package sdk), so a program can switch between the two.
//
// Unlike package sdk it links the core packages (registry, online, the
// stream materializer's push path) and with them the online stores'
// dependencies; a service that only talks to a server imports sdk alone.
//
// Usage:
//
//	e, err := embedded.Open(ctx, repoDir)
//	...
//	defer e.Close()
//	f, err := e.OnlineFeatures(ctx, sdk.Request{...})
//
// An embedded (Pebble) online store admits one process at a time: stop
// quiver serve before opening its directory here. A Client is safe for
// concurrent lookups; pushes through one Client run one at a time.
package embedded
