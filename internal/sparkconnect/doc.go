// Package sparkconnect is a small client of Spark Connect, Spark's gRPC
// protocol, for the offline engine on Spark: a session ([Dial]) runs SQL
// and streams the result as Arrow ([Session.Query]), runs statements
// ([Session.Exec]), uploads Arrow tables as temporary views
// ([Session.CreateView]), sets session settings ([Session.SetConf]) and
// interrupts what a cancelled context leaves running. Its protocol code is
// generated from the server's own .proto files (package pb; make
// proto-spark) and is tested against the server version that
// scripts/spark.sh installs.
//
// Errors from the server are *[Error]s, with Spark's error class, the
// SQLSTATE and a message fit for a user; [Error.Analysis] tells a
// statement's own faults (a missing column, a syntax error) from failures
// of the server.
package sparkconnect
