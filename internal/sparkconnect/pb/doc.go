// Package pb is the Go code generated from Spark Connect's protocol
// definitions (package spark.connect), as Spark 4.3.0 ships them in
// jars/spark-connect_2.13-4.3.0.jar. The definitions are Apache-2.0, as
// their headers, kept in the generated files, say. Regenerate with
// make proto-spark; do not edit.
package pb
