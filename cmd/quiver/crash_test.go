package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/testutil/syncbuf"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/kafkatest"
	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

// child is a quiver process started from the test binary.
type child struct {
	cmd *exec.Cmd
	out *syncbuf.Buffer
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "QUIVER_TEST_CHILD=1")
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	return &child{cmd: cmd, out: out}
}

// TestStreamCrashes kills quiver stream with SIGKILL at random moments
// while events flow, restarting it each time. At the end every event is in
// each view's offline log exactly once (the manifests cover every offset
// of every partition once), and quiver verify finds the online store equal
// to the point-in-time join at the watermark.
func TestStreamCrashes(t *testing.T) {
	o := crashOptions{events: 1_000_000}
	if testing.Short() {
		// The stream logs 100,000 events in a second or two: sent at
		// once, they are all logged by the second kill.
		o = crashOptions{events: 100_000, flow: 10 * time.Second}
	}
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	streamCrashes(t, dir, o)
}

// TestStreamCrashesS3 is TestStreamCrashes with the offline log below an
// s3:// data root, on a test server the quiver processes reach over TCP:
// a kill may cut a batch between its data objects and its manifest, or
// while either is uploaded, and each view's log still holds every event
// once.
func TestStreamCrashesS3(t *testing.T) {
	// Fewer events than TestStreamCrashes keep the test short (each
	// batch is a few requests to a server in this process); the producer
	// spreads them over several seconds, so the kills still cut the
	// stream while events flow.
	events, flow := 40_000, 15*time.Second
	if testing.Short() {
		events, flow = 20_000, 10*time.Second
	}
	srv := s3test.Start(t)
	dir := s3StorageRepo(t, srv)
	setS3DataRoot(t, dir, "s3://"+srv.Bucket+"/rides/data")
	streamCrashes(t, dir, crashOptions{events: events, flow: flow, atUpload: func(t *testing.T, c *child) {
		awaitDataPut(t, srv, c)
	}})
	require.NoDirExists(t, filepath.Join(dir, "data", streamlog.Dir), "the log is on the server only")

	// What the kills cut: data objects no manifest names (those a restart
	// found younger than its grace period are still there).
	lg := openOfflineLog(t, dir)
	for _, view := range []string{"driver_trips", "driver_last_trip"} {
		_, named, err := streamlog.Objects(context.Background(), lg.st, lg.root, view)
		require.NoError(t, err)
		b, key, err := lg.st.Open(context.Background(), lg.root)
		require.NoError(t, err)
		all, err := b.List(context.Background(), key+"/"+streamlog.Dir+"/"+view+"/")
		require.NoError(t, err)
		data := 0
		for _, o := range all {
			if strings.HasSuffix(o.Key, ".parquet") {
				data++
			}
		}
		t.Logf("view %s: %d data objects, %d of them no manifest names", view, data, data-len(named))
	}
}

// setS3DataRoot points the repository's offline.data_root at root.
func setS3DataRoot(t *testing.T, dir, root string) {
	t.Helper()
	path := filepath.Join(dir, registry.ConfigFile)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^(  data_root: )\S+`)
	require.Regexp(t, re, string(data))
	require.NoError(t, os.WriteFile(path, re.ReplaceAll(data, []byte("${1}"+root)), 0o644))
	require.Equal(t, root, dataRoot(t, dir))
}

// awaitDataPut returns as soon as the server receives a data object of
// the offline log, before the child has its answer (and so before it
// creates the batch's manifest), or after a few seconds without one.
func awaitDataPut(t *testing.T, srv *s3test.Server, c *child) {
	t.Helper()
	seen := len(srv.Requests())
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && c.cmd.ProcessState == nil {
		reqs := srv.Requests()
		for _, r := range reqs[seen:] {
			if r.Method == http.MethodPut && strings.Contains(r.Path, "/"+streamlog.Dir+"/") && strings.HasSuffix(r.Path, ".parquet") {
				return
			}
		}
		seen = len(reqs)
		time.Sleep(time.Millisecond)
	}
}

// crashOptions size a crash test.
type crashOptions struct {
	// events is how many events the producer sends.
	events int
	// flow is about how long the producer spreads them over (0: as fast
	// as the broker takes them).
	flow time.Duration
	// atUpload, when set, waits for the moment a run writes its offline
	// log, and every third kill comes then instead of at a random moment.
	atUpload func(t *testing.T, c *child)
}

// streamCrashes is the body of the crash tests: events flow into a
// three-partition topic while quiver stream over the repository in dir
// is killed and restarted, then one last run logs the rest.
func streamCrashes(t *testing.T, dir string, o crashOptions) {
	events, flow := o.events, o.flow
	lg := openOfflineLog(t, dir)
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 3)

	// The producer sends every event once, in batches, while the stream
	// is killed and restarted.
	produced := make(chan error, 1)
	go func() {
		w := b.Writer(topic)
		defer w.Close()
		gen := quickstart.NewTripGenerator(200, 2*time.Minute, 7)
		start := time.Now().UTC().Add(-4 * time.Hour).Truncate(time.Hour) // 1M events span 2.8h
		size := 5000
		if flow > 0 {
			size = 1000
		}
		batch := make([]kafka.Message, 0, size)
		begun := time.Now()
		for i := range events {
			tr := gen.Next(start.Add(time.Duration(i) * 10 * time.Millisecond))
			batch = append(batch, kafka.Message{Key: tr.Key(), Value: tr.JSON()})
			if len(batch) == cap(batch) || i == events-1 {
				if err := w.WriteMessages(context.Background(), batch...); err != nil {
					produced <- err
					return
				}
				batch = batch[:0]
				if flow > 0 {
					time.Sleep(time.Until(begun.Add(flow * time.Duration(i+1) / time.Duration(events))))
				}
			}
		}
		produced <- nil
	}()

	args := []string{"stream", "--repo", dir, "--brokers", b.Addrs[0], "--session-timeout", "1s", "--flush-interval", "200ms"}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills, midFlow, logged := 0, 0, 0
	for ; kills < 8; kills++ {
		c := startChild(t, args...)
		if kills%3 != 0 {
			// Most kills come once it consumes, after it logged more;
			// the others while it starts or joins.
			waitJoined(t, c)
			waitLogged(t, lg, logged, events, c)
		}
		if o.atUpload != nil && kills%3 == 2 {
			o.atUpload(t, c)
		} else {
			time.Sleep(time.Duration(r.IntN(400)) * time.Millisecond)
		}
		require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
		_ = c.cmd.Wait() // killed
		logged = lg.rows(t, "driver_trips")
		if logged > 0 && logged < events {
			midFlow++
		}
		t.Logf("kill %d: logged %d events", kills+1, logged)
	}
	// The kills must have cut the stream while it worked, not only before
	// it began or after it finished.
	require.GreaterOrEqual(t, midFlow, 3, "kills while events flowed")
	require.NoError(t, <-produced)

	c := startChild(t, args...)
	deadline := time.Now().Add(5 * time.Minute)
	waitJoined(t, c) // it handles signals by then
	for lg.rows(t, "driver_trips") < events || lg.rows(t, "driver_last_trip") < events {
		if time.Now().After(deadline) || c.cmd.ProcessState != nil {
			// SIGQUIT makes the child print its goroutines before it exits.
			_ = c.cmd.Process.Signal(syscall.SIGQUIT)
			_ = c.cmd.Wait()
			t.Fatalf("logged %d of %d events; quiver stream said:\n%s", lg.rows(t, "driver_trips"), events, c.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, c.cmd.Wait(), c.out.String())

	for _, view := range []string{"driver_trips", "driver_last_trip"} {
		require.Equal(t, events, lg.rows(t, view), view)
		checkCoverage(t, lg, view, topic)
	}
	code, out, stderr := quiver(t, "verify", "--repo", dir)
	require.Equal(t, 0, code, "verify:\n%s%s", out, stderr)
	t.Logf("%d kills; verify:\n%s", kills, out)
}

// waitJoined waits until the child logs that it joined the group.
func waitJoined(t *testing.T, c *child) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(c.out.String(), "consumer group generation") {
		require.False(t, time.Now().After(deadline), c.out.String())
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLogged waits until the view driver_trips logged more than n events
// (or all of them).
func waitLogged(t *testing.T, lg *offlineLog, n, events int, c *child) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for m := lg.rows(t, "driver_trips"); m <= n && m < events; m = lg.rows(t, "driver_trips") {
		require.False(t, time.Now().After(deadline), "no progress past %d events; quiver stream said:\n%s", n, c.out)
		time.Sleep(20 * time.Millisecond)
	}
}

// offlineLog reads the committed manifests of a repository's stream
// views, below its data root: a local directory, or an s3:// URI whose
// bucket its storage settings open.
type offlineLog struct {
	root string
	st   *storage.Store
}

func openOfflineLog(t *testing.T, dir string) *offlineLog {
	t.Helper()
	cfg, err := registry.LoadConfig(dir, registry.LoadOptions{})
	require.NoError(t, err)
	return &offlineLog{root: cfg.DataRoot(), st: storage.NewStore(cfg.StorageConfig())}
}

// manifests returns the view's committed manifests.
func (l *offlineLog) manifests(t *testing.T, view string) []*streamlog.Manifest {
	t.Helper()
	ms, err := streamlog.ReadManifests(context.Background(), l.st, l.root, view)
	require.NoError(t, err)
	return ms
}

// loggedRows counts the rows the view's committed manifests hold, in the
// repository in dir.
func loggedRows(t *testing.T, dir, view string) int {
	t.Helper()
	return openOfflineLog(t, dir).rows(t, view)
}

// rows counts the rows the view's committed manifests hold.
func (l *offlineLog) rows(t *testing.T, view string) int {
	t.Helper()
	ms := l.manifests(t, view)
	n := 0
	for _, m := range ms {
		for _, f := range m.Files {
			n += int(f.Rows)
		}
	}
	return n
}

// checkCoverage checks that the view's manifests cover each partition's
// offsets from 0 with neither gaps nor overlaps, and that every batch's
// rows match its offset range.
func checkCoverage(t *testing.T, lg *offlineLog, view, topic string) {
	t.Helper()
	ms := lg.manifests(t, view)
	byPart := map[int32][]*streamlog.Manifest{}
	for _, m := range ms {
		require.Equal(t, topic, m.Stream)
		byPart[m.Partition] = append(byPart[m.Partition], m)
	}
	for p, list := range byPart {
		sort.Slice(list, func(i, j int) bool { return list[i].FirstOffset < list[j].FirstOffset })
		next := int64(0)
		for _, m := range list {
			require.Equal(t, next, m.FirstOffset, "view %s partition %d: batch %s", view, p, m.Batch)
			rows := int64(0)
			for _, f := range m.Files {
				rows += f.Rows
			}
			require.Equal(t, m.LastOffset-m.FirstOffset+1, rows, fmt.Sprintf("batch %s", m.Batch))
			next = m.LastOffset + 1
		}
	}
}

func dataRoot(t *testing.T, dir string) string {
	t.Helper()
	cfg, err := registry.LoadConfig(dir, registry.LoadOptions{})
	require.NoError(t, err)
	return cfg.DataRoot()
}
