// Package offline is Quiver's offline store: Parquet sources read by
// embedded DuckDB, and point-in-time-correct training sets built with ASOF
// joins and streamed as Arrow record batches.
//
// It imports registry and transform only; never online, server, cmd or sdk.
package offline
