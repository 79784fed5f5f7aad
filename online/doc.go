// Package online is Quiver's online store: the Store interface, its Redis
// (standalone and Cluster) and embedded (Pebble) implementations, the row
// codec, and the lookup engine that reads a request's features in one
// store call, enforces ttl, fills statuses and evaluates on-demand
// features.
//
// # Lookups
//
// Lookup.Get runs in steps, each a small function:
//
//  1. plan: the request plan (package plan) of the request's features or
//     service, from a cache per registry version and request shape; it
//     says which columns to answer, in request order, which stored views
//     to read and which on-demand views to evaluate, with their hidden
//     inputs. The plan is shared and never changed.
//  2. newDemands and viewReads: what the lookup adds to the plan, per
//     request: the request fields from the request context, each view's
//     codec (slot of each feature) or aggregation spec, and the refusal of
//     views that are offline only.
//  3. encodeKeys: one store key per view and entity row, views of the same
//     entities sharing their encoded entity.
//  4. Store.Read, once for every view and row.
//  5. decode (rows, with ttl) or evaluate (aggregation tiles, windows
//     ending now) into one vector per plan column.
//  6. eval: on-demand features row by row over those vectors, with the
//     same compiled programs training sets run over Arrow batches.
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
// Of Quiver it imports registry, plan (the request plan, which brings the
// compiled on-demand expressions), value (the row format), wire (the
// statuses), aggregate (the tiles of windowed views) and small internal
// helpers; never offline, server, cmd or sdk (internal/lint checks this).
package online
