// Package plan turns a feature request into a plan: the one description
// of what a lookup or a training set computes, shared by online lookups,
// training sets, Arrow Flight and materialization, so that serving and
// training agree by construction rather than by two copies agreeing.
//
// # From request to plan
//
// A Request names feature references (view:feature, view:*) or a feature
// service, and whether outputs take full names (view__feature). New
// resolves it against one registry version (registry.Definitions):
//
//  1. The references, or the service's, are expanded in order without
//     duplicates and named; two outputs of one name are refused.
//  2. Each requested feature becomes a Column, in request order.
//  3. Each on-demand view the request names becomes a Demand, in
//     first-reference order, with its compiled program (package
//     transform), its requested features and its request fields.
//  4. Each input an on-demand view reads that was not requested is added
//     as a Hidden column after the requested ones, once, in the order the
//     views read them.
//  5. The stored features (requested, then hidden) are grouped by view
//     into Views, in the order the columns first name them, each with
//     its source, join keys and, for a view with aggregations, the
//     aggregation of each feature.
//
// The plan knows no engine. What an engine needs besides (the online
// codec slot of a feature, the SQL column names of a training set, the
// entity-table columns a join-key map names) it derives from the plan.
// Output order is the engine's too: a lookup answers Columns[:Requested]
// in request order; a training set writes its stored features view by
// view and its on-demand features last.
//
// # Errors
//
// A request that cannot be planned is an ErrInvalid whose text is the
// problem alone; engines wrap it in their own sentinel, which their
// servers map to InvalidArgument. Definitions whose on-demand views do
// not compile give the compiler's error as it is.
//
// # Caching, concurrency and ownership
//
// A Cache keeps plans per registry version (the *registry.Definitions
// pointer: an applied snapshot never changes) and request shape, for the
// last few versions (package recent), up to MaxShapes shapes each. Plans
// are immutable once made: a Cache hands the same *Plan to every caller
// with the same shape, and neither they nor the engines may change it;
// per-request state (values, keys, rows) belongs to the engine. A Cache
// is safe for concurrent use; its zero value is ready.
//
// # Use
//
//	var plans plan.Cache
//	p, err := plans.Get(defs, plan.Request{Features: []string{"driver_hourly:*"}})
//	if errors.Is(err, plan.ErrInvalid) { ... }
//	for _, v := range p.Views { read(v.View, v.Keys, v.Features) }
//	for _, d := range p.Demands { eval(d.View, d.Inputs, d.Features) }
//
// It imports registry, transform and internal packages only; never
// online, offline, server, cmd or sdk.
package plan
