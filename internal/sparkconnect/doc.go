// Package sparkconnect is a small client of Spark Connect, Spark's gRPC
// protocol, for the offline engine on Spark. Its protocol code is
// generated from the server's own .proto files (package pb; make
// proto-spark) and is tested against the server version that
// scripts/spark.sh installs.
//
// Use:
//
//  1. [Dial] a remote ("sc://host:15002", settings after "/;", see
//     [ParseRemote]); it opens a session with a new UUID and checks that
//     the server answers.
//  2. Set the session's settings with [Session.SetConf]; upload client-side
//     tables with [Session.CreateView]; run statements with [Session.Exec].
//  3. Run a query with [Session.Query] and read its reader to the end, or
//     stop early: Release the reader in either case. Cancelling the
//     context, or releasing before the end, interrupts the query on the
//     server.
//  4. [Session.Close] releases the session on the server (its views and
//     settings go with it) and closes the connection.
//
// Concurrency: a Session's methods may be called from several goroutines,
// and its queries run side by side. A reader from Query is for one
// goroutine at a time.
//
// Memory: a record from the reader's RecordBatch is valid until the next
// call of Next or Release; Retain it to keep it, and Release what you
// retained. CreateView reads its reader to the end but does not release
// it: the caller owns it. Each Arrow batch of a result arrives as one gRPC
// message (Spark sends up to 10,000 rows a batch), so Options.MaxRecvBytes
// bounds the widest batch accepted.
//
// Errors from the server are *[Error]s, with Spark's error class, the
// SQLSTATE and a message fit for a user; [Error.Analysis] tells a
// statement's own faults (a missing column, a syntax error) from failures
// of the server. An ended context is returned as the context's error,
// wrapped, so errors.Is(err, context.Canceled) holds.
package sparkconnect
