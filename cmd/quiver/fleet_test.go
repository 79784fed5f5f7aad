package main

// Many quiver processes at once over one online store, on loopback: a
// consumer group of quiver stream members, one of them killed with
// SIGKILL, and quiver serve replicas restarted one at a time under load.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	_ "google.golang.org/grpc/health" // client-side health checking

	"github.com/quiverdata/quiver/internal/kafkatest"
	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/internal/testutil/redistest"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
)

// useRedis points the repository's online store at Redis: one server, or
// the nodes of a Redis Cluster.
func useRedis(t *testing.T, dir string, addrs ...string) {
	t.Helper()
	path := filepath.Join(dir, registry.ConfigFile)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^online:\n(?:  .*\n)+`)
	require.Regexp(t, re, string(data))
	block := "online:\n  type: redis\n  addr: " + addrs[0] + "\n"
	if len(addrs) > 1 {
		block = "online:\n  type: redis\n  addrs: [" + strings.Join(addrs, ", ") + "]\n"
	}
	require.NoError(t, os.WriteFile(path, re.ReplaceAll(data, []byte(block)), 0o644))
	cfg, err := registry.LoadConfig(dir, registry.LoadOptions{})
	require.NoError(t, err)
	require.Equal(t, "redis", string(cfg.Online.Type))
}

// TestStreamGroupMemberKilled: three quiver stream processes share one
// consumer group over a six-partition topic and one online store (one
// Redis; a three-node Redis Cluster). While events
// flow, one member is killed with SIGKILL; the other two take over its
// partitions. At the end every event is in each view's offline log exactly
// once, and quiver verify finds the online store equal to the
// point-in-time join at the watermark (so no event was applied twice: the
// windowed sums would show it).
func TestStreamGroupMemberKilled(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		rs := redistest.Start(t)
		groupMemberKilled(t, rs.Addr())
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, 3)
		groupMemberKilled(t, c.Addrs()...)
	})
}

func groupMemberKilled(t *testing.T, addrs ...string) {
	events, flow := 60_000, 12*time.Second
	if testing.Short() {
		events, flow = 20_000, 8*time.Second
	}
	dir := initRepo(t)
	useRedis(t, dir, addrs...)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	lg := openOfflineLog(t, dir)
	b := kafkatest.Start(t)
	const topic = "trips"
	b.CreateTopic(t, topic, 6)

	args := []string{"stream", "--repo", dir, "--brokers", b.Addrs[0], "--group", "fleet",
		"--session-timeout", "2s", "--flush-interval", "200ms"}
	members := make([]*child, 3)
	for i := range members {
		members[i] = startChild(t, args...)
	}
	t.Cleanup(func() {
		for _, m := range members {
			if m.cmd.ProcessState == nil {
				_ = m.cmd.Process.Kill()
				_ = m.cmd.Wait()
			}
		}
	})
	// Every member holds partitions before the events flow.
	deadline := time.Now().Add(time.Minute)
	for _, m := range members {
		for !holdsPartitions(m.out.String()) {
			require.False(t, time.Now().After(deadline), "a member without partitions:\n%s\n--- broker:\n%s", m.out, b.Log())
			time.Sleep(20 * time.Millisecond)
		}
	}

	produced := make(chan error, 1)
	go func() { produced <- produceTrips(b, topic, events, flow) }()

	// Kill one member once a third of the events are logged.
	waitLogged(t, lg, events/3, events, members[0])
	victim := members[1]
	require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
	_ = victim.cmd.Wait()
	killedAt := lg.rows(t, "driver_trips")
	t.Logf("killed a member with %d of %d events logged", killedAt, events)
	require.Less(t, killedAt, events, "the kill came while events flowed")
	require.NoError(t, <-produced)

	deadline = time.Now().Add(3 * time.Minute)
	for lg.rows(t, "driver_trips") < events || lg.rows(t, "driver_last_trip") < events {
		if time.Now().After(deadline) {
			t.Fatalf("logged %d of %d events; members said:\n%s\n---\n%s", lg.rows(t, "driver_trips"), events, members[0].out, members[2].out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range []*child{members[0], members[2]} {
		require.NoError(t, m.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, m.cmd.Wait(), m.out.String())
	}
	// The survivors took over the victim's partitions: between them they
	// held all six in a generation after the kill.
	require.True(t, heldAfterKill(victim.out.String(), members[0].out.String(), members[2].out.String(), 6),
		"the survivors took over every partition:\n%s\n---\n%s", members[0].out, members[2].out)

	for _, view := range []string{"driver_trips", "driver_last_trip"} {
		require.Equal(t, events, lg.rows(t, view), view)
		checkCoverage(t, lg, view, topic)
	}
	code, out, stderr := quiver(t, "verify", "--repo", dir)
	require.Equal(t, 0, code, "verify:\n%s%s", out, stderr)
	t.Logf("verify:\n%s", out)
}

// produceTrips sends n trip events to topic, spread over about flow.
func produceTrips(b *kafkatest.Broker, topic string, n int, flow time.Duration) error {
	w := b.Writer(topic)
	defer w.Close()
	gen := quickstart.NewTripGenerator(200, 2*time.Minute, 11)
	start := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	batch := make([]kafka.Message, 0, 500)
	begun := time.Now()
	for i := range n {
		tr := gen.Next(start.Add(time.Duration(i) * 50 * time.Millisecond))
		batch = append(batch, kafka.Message{Key: tr.Key(), Value: tr.JSON()})
		if len(batch) == cap(batch) || i == n-1 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				return err
			}
			batch = batch[:0]
			time.Sleep(time.Until(begun.Add(flow * time.Duration(i+1) / time.Duration(n))))
		}
	}
	return nil
}

// generationRE matches a member's log line for a generation it joined.
var generationRE = regexp.MustCompile(`msg="consumer group generation".* generation=(\d+) assignments="?([^"\n]*)"?`)

// holdsPartitions says whether a member's log shows a generation in which
// it was given partitions.
func holdsPartitions(log string) bool {
	for _, m := range generationRE.FindAllStringSubmatch(log, -1) {
		if strings.TrimSpace(m[2]) != "" {
			return true
		}
	}
	return false
}

// generations maps the generations a member's log shows to the
// partitions it was given in each.
func generations(log string) map[int][]string {
	out := map[int][]string{}
	for _, m := range generationRE.FindAllStringSubmatch(log, -1) {
		var gen int
		if _, err := fmt.Sscan(m[1], &gen); err == nil {
			out[gen] = strings.Fields(m[2])
		}
	}
	return out
}

// heldAfterKill says whether, in the first generation after the victim's
// last one that both survivors joined, the survivors between them held n
// distinct partitions.
func heldAfterKill(victim, a, b string, n int) bool {
	last := 0
	for gen := range generations(victim) {
		last = max(last, gen)
	}
	ga, gb := generations(a), generations(b)
	first := 0
	for gen := range ga {
		if _, ok := gb[gen]; ok && gen > last && (first == 0 || gen < first) {
			first = gen
		}
	}
	if first == 0 {
		return false
	}
	seen := map[string]bool{}
	for _, p := range append(ga[first], gb[first]...) {
		seen[p] = true
	}
	return len(seen) == n
}

// TestServeReplicasRollingRestart: two quiver serve replicas over one
// online store (one Redis; a three-node Redis Cluster) are restarted one
// at a time while clients send a bounded load over HTTP (through a
// balancer that routes to the replicas whose /readyz answers 200, as a
// Kubernetes Service does) and over gRPC (round robin with client-side
// health checking). With a drain delay no request fails.
func TestServeReplicasRollingRestart(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		rs := redistest.Start(t)
		rollingRestart(t, rs.Addr())
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, 3)
		rollingRestart(t, c.Addrs()...)
	})
}

func rollingRestart(t *testing.T, addrs ...string) {
	dir := initRepo(t)
	useRedis(t, dir, addrs...)
	for _, args := range [][]string{{"apply"}, {"materialize", "--incremental"}} {
		code, out, stderr := quiver(t, append(args, "--repo", dir)...)
		require.Equal(t, 0, code, "%v:\n%s%s", args, out, stderr)
	}
	type replica struct {
		grpc, http string
		c          *child
	}
	start := func(r *replica) {
		r.c = startChild(t, "serve", "--repo", dir, "--grpc", r.grpc, "--http", r.http, "--flight", "off",
			"--drain-delay", "1s")
		deadline := time.Now().Add(time.Minute)
		for !ready(r.http) {
			require.False(t, time.Now().After(deadline), "replica never ready:\n%s", r.c.out)
			require.Nil(t, r.c.cmd.ProcessState, "replica exited:\n%s", r.c.out)
			time.Sleep(20 * time.Millisecond)
		}
	}
	replicas := []*replica{{grpc: freeAddr(t), http: freeAddr(t)}, {grpc: freeAddr(t), http: freeAddr(t)}}
	for _, r := range replicas {
		start(r)
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			if r.c.cmd.ProcessState == nil {
				_ = r.c.cmd.Process.Kill()
				_ = r.c.cmd.Wait()
			}
		}
	})

	// The HTTP balancer's endpoints: replicas whose /readyz says 200,
	// polled every 100 ms.
	var endpoints atomic.Pointer[[]string]
	endpoints.Store(&[]string{replicas[0].http, replicas[1].http})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var up []string
			for _, r := range replicas {
				if ready(r.http) {
					up = append(up, r.http)
				}
			}
			endpoints.Store(&up)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	res := manual.NewBuilderWithScheme("fleet")
	res.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: replicas[0].grpc}, {Addr: replicas[1].grpc}}})
	// A client that reconnects within half a second once a replica is
	// back (gRPC's default backoff grows to two minutes).
	conn, err := grpc.NewClient("fleet:///serve", grpc.WithResolvers(res),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: time.Second,
			Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond}}),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}`))
	require.NoError(t, err)
	defer conn.Close()
	client := servingv1.NewServingClient(conn)

	var okHTTP, okGRPC atomic.Int64
	// served counts each replica's answers by surface ("http " or "grpc "
	// and its address).
	var served sync.Map
	count := func(key string) {
		n, _ := served.LoadOrStore(key, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	answered := func(key string) int64 {
		n, ok := served.Load(key)
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}
	var mu sync.Mutex
	var failures []string
	fail := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, s)
		}
	}
	body := []byte(`{"entities": {"driver_id": [1001, 1002, 1003]}, "features": ["driver_hourly:conv_rate", "driver_hourly:avg_daily_trips"]}`)
	hc := &http.Client{Timeout: 5 * time.Second}
	for range 2 { // HTTP clients
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				up := *endpoints.Load()
				if len(up) == 0 {
					fail("no replica ready")
					time.Sleep(10 * time.Millisecond)
					continue
				}
				addr := up[i%len(up)]
				resp, err := hc.Post("http://"+addr+"/v1/online-features", "application/json", bytes.NewReader(body))
				if err != nil {
					fail("http: " + err.Error())
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !bytes.Contains(data, []byte(`"rows":3`)) {
					fail(fmt.Sprintf("http %d: %s", resp.StatusCode, data))
					continue
				}
				okHTTP.Add(1)
				count("http " + addr)
				time.Sleep(2 * time.Millisecond) // bounded: a few hundred requests a second
			}
		}()
	}
	for range 2 { // gRPC clients
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &servingv1.GetOnlineFeaturesRequest{
				Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1001, 1002, 1003}}},
				Features: []string{"driver_hourly:conv_rate", "driver_hourly:avg_daily_trips"},
			}
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				var p peer.Peer
				resp, err := client.GetOnlineFeatures(cctx, req, grpc.Peer(&p))
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						fail("grpc: " + err.Error())
					}
					continue
				}
				if resp.Rows != 3 {
					fail(fmt.Sprintf("grpc: %d rows", resp.Rows))
					continue
				}
				okGRPC.Add(1)
				if p.Addr != nil {
					count("grpc " + p.Addr.String())
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}

	// Each replica answers on both surfaces, before the first restart
	// and again after its own, before the next one goes: a rolling
	// update waits for the new pod, and the clients take time to see it.
	servedAgain := func(r *replica, since [2]int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for answered("http "+r.http) <= since[0] || answered("grpc "+r.grpc) <= since[1] {
			require.False(t, time.Now().After(deadline), "replica %s/%s answers no requests (%d HTTP, %d gRPC)",
				r.http, r.grpc, answered("http "+r.http), answered("grpc "+r.grpc))
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, r := range replicas {
		servedAgain(r, [2]int64{})
	}
	for _, r := range replicas {
		before := okHTTP.Load() + okGRPC.Load()
		require.NoError(t, r.c.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, r.c.cmd.Wait(), "replica's drain:\n%s", r.c.out)
		require.Contains(t, r.c.out.String(), "draining")
		since := [2]int64{answered("http " + r.http), answered("grpc " + r.grpc)}
		start(r)
		servedAgain(r, since)
		require.Greater(t, okHTTP.Load()+okGRPC.Load(), before+100, "requests went on during the restart")
	}
	stop()
	wg.Wait()
	t.Logf("%d HTTP and %d gRPC requests answered across two restarts", okHTTP.Load(), okGRPC.Load())
	require.Empty(t, failures, "no request failed")
	require.Greater(t, okHTTP.Load(), int64(200))
	require.Greater(t, okGRPC.Load(), int64(200))
}

// ready says whether the serve replica at addr answers /readyz with 200.
func ready(addr string) bool {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestStreamBrokerRestart: the Kafka broker is killed with SIGKILL and
// started again while quiver stream consumes (a crash of the broker, or
// of its node). The stream rides it out: once the broker is back, it
// rejoins the group and resumes, and at the end every event is in each
// view's offline log exactly once and quiver verify finds 0 mismatches.
// A real broker only (make integration): kfake keeps nothing across a
// restart.
func TestStreamBrokerRestart(t *testing.T) {
	b := kafkatest.Start(t)
	if b.Kind != "kafka" {
		t.Skipf("kafkatest: the %s broker cannot be restarted; QUIVER_KAFKA_HOME runs this test against a real Apache Kafka broker (make integration)", b.Kind)
	}
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	lg := openOfflineLog(t, dir)
	const topic = "trips"
	b.CreateTopic(t, topic, 3)
	c := startChild(t, "stream", "--repo", dir, "--brokers", b.Addrs[0], "--session-timeout", "2s", "--flush-interval", "200ms")
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	waitJoined(t, c)

	const half = 20_000
	produced := make(chan error, 1)
	go func() { produced <- produceTrips(b, topic, half, 4*time.Second) }()
	waitLogged(t, lg, half/4, half, c)
	require.NoError(t, <-produced)
	before := lg.rows(t, "driver_trips")
	b.Restart(t)
	t.Logf("broker restarted with %d of %d events logged", before, 2*half)
	require.Nil(t, c.cmd.ProcessState, "quiver stream exited when the broker went away:\n%s", c.out)
	require.NoError(t, produceTrips(b, topic, half, 4*time.Second))

	deadline := time.Now().Add(3 * time.Minute)
	for lg.rows(t, "driver_trips") < 2*half || lg.rows(t, "driver_last_trip") < 2*half {
		if time.Now().After(deadline) || c.cmd.ProcessState != nil {
			t.Fatalf("logged %d of %d events; quiver stream said:\n%s\n--- broker:\n%s", lg.rows(t, "driver_trips"), 2*half, c.out, b.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, c.cmd.Wait(), c.out.String())
	for _, view := range []string{"driver_trips", "driver_last_trip"} {
		require.Equal(t, 2*half, lg.rows(t, view), view)
		checkCoverage(t, lg, view, topic)
	}
	code, out, stderr := quiver(t, "verify", "--repo", dir)
	require.Equal(t, 0, code, "verify:\n%s%s", out, stderr)
	t.Logf("quiver stream across the restart:\n%s", c.out)
}
