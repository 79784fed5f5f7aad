// Package materialize keeps the online store consistent with the offline
// store: batch materialization (offline → online, incremental with
// watermarks) and the streaming materializer (Kafka → online + offline log).
// It is the only package that imports both online and offline.
package materialize
