// Package redistest starts real redis-server processes for tests.
//
// Each call to [Start] launches a private redis-server on a free loopback
// port with persistence disabled and its working directory in
// t.TempDir(), and stops it when the test finishes. Tests therefore never
// share an instance or its data, and may run in parallel:
//
//	func TestOnlineStore(t *testing.T) {
//		t.Parallel()
//		srv := redistest.Start(t)
//		store := newStore(srv.Addr()) // "127.0.0.1:NNNNN"
//		...
//		got, err := srv.Do("HGET", "user:1", "age") // inspect state directly
//	}
//
// [StartCluster] does the same for a Redis Cluster of N masters formed with
// redis-cli --cluster create; [Cluster.Addrs] gives the seed addresses.
//
// [Server.Do] sends a single command over a fresh connection and decodes
// the reply, which is enough to set up or check state without a client
// library.
//
// The binaries come from Debian's redis-server package (which also brings
// redis-cli). When they are not on PATH the test is skipped, unless the
// environment variable CI is "true", in which case it fails: .ci/run
// installs the package and sets CI=true, so integration tests cannot be
// skipped silently there.
package redistest
