// Package online is Quiver's online store: the Store interface, its Redis
// (standalone and Cluster) and embedded (Pebble) implementations, the key
// and row encoding, and the lookup engine that groups requested features
// by view, reads them in one store call, enforces ttl and fills statuses.
//
// It imports registry and transform only; never offline, server, cmd or sdk.
package online
