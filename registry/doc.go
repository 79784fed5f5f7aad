// Package registry holds Quiver's definition model and its versioned store.
//
// A feature repository is a directory with a quiver.yaml (the project's
// configuration: registry location, store connections) and any number of
// *.yaml definition files declaring entities, sources, feature views,
// on-demand feature views and feature services. The life of a definition:
//
//  1. LoadRepo reads quiver.yaml and every definition file, decodes them
//     strictly (unknown keys are errors), validates references, types and
//     CEL expressions, and returns a Repo, or an ErrorList holding every
//     problem found, each with file, line, column and field path.
//     LoadRepoContext does the same and stops when its context is done.
//     Only regular files of at most MaxFileBytes are read (a named pipe or
//     a device named *.yaml is an error, never waited on), and messages cut
//     long values (Clip).
//  2. Diff compares loaded Definitions with the latest applied snapshot and
//     returns a Plan: per object create / update (with changed fields) /
//     delete / unchanged, with breaking changes flagged.
//  3. Store.Apply writes an immutable, content-hashed Snapshot with the next
//     version number. An unchanged repository writes nothing. Concurrent
//     applies never lose or overwrite a version: a Backend creates a version
//     only if it does not exist yet, and Apply retries on top of the winner.
//     OpenStore (or Config.OpenRegistry) picks the Backend from quiver.yaml's
//     registry: DirBackend for a directory (a hard link creates a version),
//     ObjectBackend for s3://bucket/prefix (a PUT with If-None-Match: *,
//     through package storage).
//  4. Long-running processes hold a Watcher, which polls the store and swaps
//     the current snapshot atomically when a new version appears.
//
// Ownership and concurrency: Definitions returned by LoadRepo or read from a
// snapshot are immutable once returned and safe for concurrent readers.
// Store and Watcher are safe for concurrent use. Backend implementations must
// make Create atomic (readers never see a partial version) and exclusive
// (exactly one of several concurrent Creates of one version succeeds).
//
// Environment variables (${VAR} and ${VAR:-default}) are interpolated in
// quiver.yaml only; a variable that is unset and has no default is reported
// by Config.Require for the sections a command needs, so that commands which
// do not need a setting (validate, plan) work without it. Definition files
// are not interpolated: a snapshot means the same thing in every
// environment.
package registry
