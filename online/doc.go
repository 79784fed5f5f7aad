// Package online is Quiver's online store: the Store interface, its Redis
// (standalone and Cluster) and embedded (Pebble) implementations, the row
// codec, and the lookup engine that groups requested features by view,
// reads them in one store call, enforces ttl and fills statuses.
//
// # Rows
//
// A row is one view's features for one entity, encoded by Codec as one
// compact binary value that starts with its event time, so that stores can
// guard writes (a row is written only if it is not older than the stored
// one) without decoding it. Stores treat values as opaque bytes otherwise.
//
// # Concurrency and ownership
//
// Stores and the Lookup engine are safe for concurrent use. Byte slices
// returned by Store.Read belong to the caller. Stores must be closed.
//
// Of Quiver it imports registry, wire (the statuses), transform (on-demand
// expressions), aggregate (the tiles of windowed views) and small internal
// helpers; never offline, server, cmd or sdk (internal/lint checks this).
package online
