// Package server adapts the online and offline stores to gRPC, HTTP/JSON
// and Arrow Flight: request decoding, error mapping to status codes, auth,
// limits, metrics and health. It holds no feature-store logic of its own.
package server
