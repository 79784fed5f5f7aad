// Package sparktest starts real Spark Connect servers for tests.
//
// [Start] launches a private Spark Connect server (Spark's own
// SparkConnectServer, from a pip-installed PySpark) with master local[2] on
// a free loopback port, waits until it opens sessions, and stops it, with
// every process of its group, when the test ends:
//
//	func TestOnSpark(t *testing.T) {
//		srv := sparktest.Start(t)
//		session, err := sparkconnect.Dial(ctx, srv.Remote(), sparkconnect.Options{})
//		...
//	}
//
// A server takes tens of seconds to start (a JVM, then a SparkContext), so
// a package should start one and run its cases as subtests, or start one in
// TestMain with [Launch] and stop it there.
//
// The server is small, fast and deterministic: two cores, two shuffle
// partitions, no UI, session time zone UTC, 1 GiB of driver memory, an
// in-memory catalog, and its warehouse, scratch space, configuration and
// log in its own directory. [WithConf] overrides any Spark setting.
//
// The installation is found through the environment variable
// QUIVER_SPARK_HOME, the directory that scripts/spark.sh prints (the
// pyspark package, which carries Spark's jars and launcher scripts); Java
// is $JAVA_HOME/bin/java, else java on PATH. When either is missing the
// test is skipped with a loud message, unless CI is "true", in which case
// it fails: an integration test cannot be skipped silently there.
//
// The server's output is kept in a file in its directory; Start quotes its
// end when the server does not come up, and again when the test fails.
package sparktest
