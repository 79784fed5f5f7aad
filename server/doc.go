// Package server adapts the online store to gRPC (quiver.serving.v1.Serving,
// gRPC health, reflection) and HTTP/JSON (POST /v1/online-features,
// POST /v1/push, GET /healthz, GET /readyz). It converts requests and
// responses and maps core errors to status codes; the lookup itself is
// online.Lookup, and pushes go to a Pusher (the stream materializer's
// stream.Applier, given with Serving.SetPusher). Feast's online API is
// served too, for Feast's clients: HTTP POST /get-online-features and
// POST /push, and gRPC feast.serving.ServingService; feast.go translates
// them onto the same lookup and push path. Pushes of one source run
// one at a time, as the Applier requires; a push that has started runs to
// completion even when its client goes away.
//
// The definitions a request is answered with come from a function that
// returns the current registry snapshot (a registry.Watcher's Current, in
// quiver serve), so a new applied version takes effect without a restart.
//
// Every surface shares one error mapping (errors.go: core error → gRPC
// code → HTTP status) and one authentication rule: with a token, every
// call but the health checks needs it, reflection, /metrics and every
// Flight RPC included. Server.Serve owns one goroutine besides the
// listeners: it polls the ready function and keeps gRPC health in line
// with it, and stops before Serve returns. Config bounds connections,
// streams, request time and the HTTP read, write and idle times
// (docs/security.md lists them with their defaults).
package server
