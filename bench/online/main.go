// Command online measures online lookups: 1 entity × 50 features and 100
// entities × 50 features (5 views of 10) over gRPC against a local Redis,
// beside a raw go-redis MGET of the same keys in the same run, plus the
// embedded store in process. It prints p50, p99 and throughput, and the
// ratios to the targets.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quiverdata/quiver/bench/internal/benchredis"
	"github.com/quiverdata/quiver/bench/internal/report"
	"github.com/quiverdata/quiver/online"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
)

var (
	entities    = flag.Int("entities", 10000, "entities stored per view")
	requests    = flag.Int("requests", 3000, "sequential requests per latency case")
	concurrency = flag.Int("concurrency", 16, "concurrent clients in the throughput cases")
	duration    = flag.Duration("duration", 3*time.Second, "length of each throughput case")
	cpuprofile  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE`")
	withEmb     = flag.Bool("embedded", true, "also measure the embedded store in process")
)

const views, featuresPerView = 5, 10

func main() {
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "online:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "online:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "online:", err)
		os.Exit(1)
	}
}

func definitions() (*registry.Definitions, error) {
	var b strings.Builder
	b.WriteString("entities: [{name: driver, join_keys: [{name: driver_id, type: int64}]}]\n")
	b.WriteString("sources: [{name: s, kind: parquet, path: x.parquet, timestamp_field: ts}]\nfeature_views:\n")
	for v := range views {
		fmt.Fprintf(&b, "  - {name: view%d, entities: [driver], source: s, ttl: 0, features: [", v)
		for f := range featuresPerView {
			if f > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{name: f%d, type: float32}", f)
		}
		b.WriteString("]}\n")
	}
	// Five on-demand features over the stored ones and a request field.
	b.WriteString(`on_demand_feature_views:
  - name: od
    inputs: [view0, view1, view2, view3, view4]
    request: [{name: surge, type: float64}]
    features:
      - {name: scaled, type: float64, expr: "view0.f0 * request.surge"}
      - {name: sum, type: float64, expr: "view1.f1 + view2.f2"}
      - {name: flag, type: bool, expr: "view3.f3 > 0.5"}
      - {name: clipped, type: float64, expr: "math.least(view4.f4 * 2.0, 1.0)"}
      - {name: guarded, type: float64, expr: "has(view0.f9) ? view0.f9 / request.surge : 0.0"}
`)
	defs, errs := registry.ParseDefinitions("bench", []string{"b.yaml"}, map[string][]byte{"b.yaml": []byte(b.String())})
	return defs, errs.Err()
}

func run() error {
	ctx := context.Background()
	defs, err := definitions()
	if err != nil {
		return err
	}
	rs, store, err := benchredis.StartStore(ctx)
	if err != nil {
		return err
	}
	defer rs.Stop()
	defer store.Close()
	// Fill every view for every entity.
	now := time.Now()
	vals := make([]any, featuresPerView)
	for f := range vals {
		vals[f] = float32(f) / 10
	}
	for v := range views {
		c := online.NewCodec(defs.FeatureView(fmt.Sprintf("view%d", v)))
		var rows []online.Row
		for e := range *entities {
			val, err := c.Encode(nil, now, vals)
			if err != nil {
				return err
			}
			ent, _ := online.EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{int64(e)})
			rows = append(rows, online.Row{Key: online.Key{Project: "bench", View: fmt.Sprintf("view%d", v), Entity: ent}, Value: val})
			if len(rows) == 5000 {
				if _, err := store.Write(ctx, rows, online.WriteOptions{}); err != nil {
					return err
				}
				rows = rows[:0]
			}
		}
		if _, err := store.Write(ctx, rows, online.WriteOptions{}); err != nil {
			return err
		}
	}

	snap := &registry.Snapshot{Project: "bench", Version: 1, Defs: defs}
	serving := server.NewServing(online.NewLookup(store, online.LookupOptions{}), func() *registry.Snapshot { return snap }, server.Limits{}, "bench")
	srv, err := server.New(server.Config{GRPCAddr: "127.0.0.1:0"}, serving, func(context.Context) error { return nil })
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := servingv1.NewServingClient(conn)
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()

	emb, err := online.OpenEmbedded(must(os.MkdirTemp("", "quiver-bench-online-")))
	if err != nil {
		return err
	}
	defer emb.Close()
	for v := range views {
		c := online.NewCodec(defs.FeatureView(fmt.Sprintf("view%d", v)))
		var rows []online.Row
		for e := range *entities {
			val, _ := c.Encode(nil, now, vals)
			ent, _ := online.EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{int64(e)})
			rows = append(rows, online.Row{Key: online.Key{Project: "bench", View: fmt.Sprintf("view%d", v), Entity: ent}, Value: val})
		}
		if _, err := emb.Write(ctx, rows, online.WriteOptions{}); err != nil {
			return err
		}
	}
	embLookup := online.NewLookup(emb, online.LookupOptions{})

	var refs []string
	for v := range views {
		refs = append(refs, fmt.Sprintf("view%d:*", v))
	}
	fmt.Printf("online lookups: %d views × %d float32 features, %d entities stored; Redis 7 on loopback; %d sequential requests per latency case, %d clients for %s per throughput case\n\n",
		views, featuresPerView, *entities, *requests, *concurrency, *duration)
	var rowsOut []report.Row
	var verdicts []string
	// The transport floor: a gRPC call that does no lookup.
	noop := func() error { _, err := client.GetServerInfo(ctx, &servingv1.GetServerInfoRequest{}); return err }
	noopLat, err := latencies(noop)
	if err != nil {
		return err
	}
	rowsOut = append(rowsOut, report.Row{Case: "gRPC round trip, no lookup (GetServerInfo)", Cells: []string{us(pct(noopLat, 50)), us(pct(noopLat, 99)), "", ""}})
	for _, n := range []int{1, 100} {
		ids := make([]int64, n)
		anyIDs := make([]any, n)
		var keys []string
		for i := range ids {
			ids[i] = int64((i * 97) % *entities)
			anyIDs[i] = ids[i]
		}
		for v := range views {
			for _, id := range ids {
				ent, _ := online.EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{id})
				keys = append(keys, online.RedisKey(online.Key{Project: "bench", View: fmt.Sprintf("view%d", v), Entity: ent}))
			}
		}
		req := &servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: ids}}, Features: refs, FullFeatureNames: true}
		rawCall := func() error { return raw.MGet(ctx, keys...).Err() }
		grpcCall := func() error {
			resp, err := client.GetOnlineFeatures(ctx, req)
			if err == nil && (int(resp.Rows) != n || len(resp.Features) != views*featuresPerView) {
				err = fmt.Errorf("bad response: %d rows, %d features", resp.Rows, len(resp.Features))
			}
			return err
		}
		redisLookup := online.NewLookup(store, online.LookupOptions{})
		inProc := func() error {
			_, err := redisLookup.Get(ctx, defs, &online.Request{Entities: map[string][]any{"driver_id": anyIDs}, Features: refs, FullFeatureNames: true})
			return err
		}
		embCall := func() error {
			_, err := embLookup.Get(ctx, defs, &online.Request{Entities: map[string][]any{"driver_id": anyIDs}, Features: refs, FullFeatureNames: true})
			return err
		}
		label := fmt.Sprintf("%d×%d", n, views*featuresPerView)
		rawLat, err := latencies(rawCall)
		if err != nil {
			return err
		}
		grpcLat, err := latencies(grpcCall)
		if err != nil {
			return err
		}
		inProcLat, err := latencies(inProc)
		if err != nil {
			return err
		}
		embLat := []time.Duration{0}
		if *withEmb {
			if embLat, err = latencies(embCall); err != nil {
				return err
			}
		}
		rawTput, err := throughput(rawCall)
		if err != nil {
			return err
		}
		grpcTput, err := throughput(grpcCall)
		if err != nil {
			return err
		}
		rowsOut = append(rowsOut,
			report.Row{Case: label + " raw MGET (go-redis)", Cells: []string{us(pct(rawLat, 50)), us(pct(rawLat, 99)), fmt.Sprintf("%.0f/s", rawTput), "1.00×"}},
			report.Row{Case: label + " Quiver gRPC (Redis)", Cells: []string{us(pct(grpcLat, 50)), us(pct(grpcLat, 99)), fmt.Sprintf("%.0f/s", grpcTput),
				fmt.Sprintf("%.2f×", float64(pct(grpcLat, 99))/float64(pct(rawLat, 99)))}},
			report.Row{Case: label + " Quiver lookup in process (Redis)", Cells: []string{us(pct(inProcLat, 50)), us(pct(inProcLat, 99)), "",
				fmt.Sprintf("%.2f×", float64(pct(inProcLat, 99))/float64(pct(rawLat, 99)))}},
			report.Row{Case: label + " Quiver embedded, in process", Cells: []string{us(pct(embLat, 50)), us(pct(embLat, 99)), "", ""}},
		)
		slack := 100 * time.Microsecond
		if n > 1 {
			slack = 200 * time.Microsecond
		}
		target := time.Duration(1.5*float64(pct(rawLat, 99))) + slack
		verdict := "met"
		if pct(grpcLat, 99) > target {
			verdict = "NOT met"
		}
		verdicts = append(verdicts, fmt.Sprintf("%s: Quiver gRPC p99 %s vs target 1.5 × raw p99 + %s = %s: %s",
			label, us(pct(grpcLat, 99)), slack, us(target), verdict))
	}
	report.Table(os.Stdout, []string{"case", "p50", "p99", "throughput", "p99 vs raw"}, rowsOut)
	fmt.Println()
	for _, v := range verdicts {
		fmt.Println(v)
	}
	return onDemandOverhead(ctx, defs, embLookup, refs)
}

// onDemandOverhead measures what five on-demand features add to a 100×50
// lookup on the embedded store in process (no network in the figure):
// rounds of the request without and with them, alternated, compared by
// their means.
func onDemandOverhead(ctx context.Context, defs *registry.Definitions, l *online.Lookup, refs []string) error {
	const n, rounds, perRound = 100, 20, 200
	ids := make([]any, n)
	surge := make([]any, n)
	for i := range ids {
		ids[i] = int64((i * 97) % *entities)
		surge[i] = 1.5
	}
	plain := &online.Request{Entities: map[string][]any{"driver_id": ids}, Features: refs, FullFeatureNames: true}
	withOD := &online.Request{Entities: map[string][]any{"driver_id": ids}, Features: append(append([]string{}, refs...), "od:*"),
		FullFeatureNames: true, RequestContext: map[string][]any{"surge": surge}}
	resp, err := l.Get(ctx, defs, withOD)
	if err != nil {
		return err
	}
	for _, fv := range resp.Features[views*featuresPerView:] {
		for _, st := range fv.Statuses {
			if st != online.Present {
				return fmt.Errorf("on-demand feature %s: status %s", fv.Name, st)
			}
		}
	}
	var tPlain, tOD time.Duration
	for range rounds {
		for _, c := range []struct {
			req *online.Request
			sum *time.Duration
		}{{plain, &tPlain}, {withOD, &tOD}} {
			start := time.Now()
			for range perRound {
				if _, err := l.Get(ctx, defs, c.req); err != nil {
					return err
				}
			}
			*c.sum += time.Since(start)
		}
	}
	calls := float64(rounds * perRound)
	meanPlain, meanOD := float64(tPlain)/calls, float64(tOD)/calls
	perFeatureRow := (meanOD - meanPlain) / (5 * n)
	fmt.Printf("\non-demand features, embedded store in process, %d entities, mean of %d calls each:\n", n, rounds*perRound)
	report.Table(os.Stdout, []string{"case", "mean", "per on-demand feature per row"}, []report.Row{
		{Case: fmt.Sprintf("%d×%d stored", n, views*featuresPerView), Cells: []string{us(time.Duration(meanPlain)), ""}},
		{Case: fmt.Sprintf("%d×%d stored + 5 on-demand", n, views*featuresPerView), Cells: []string{us(time.Duration(meanOD)), fmt.Sprintf("%.2fµs", perFeatureRow/1e3)}},
	})
	verdict := "met"
	if perFeatureRow > 2000 {
		verdict = "NOT met"
	}
	fmt.Printf("\non-demand overhead %.2fµs per feature per row (target < 2µs): %s\n", perFeatureRow/1e3, verdict)
	return nil
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// latencies times sequential calls after a warm-up.
func latencies(call func() error) ([]time.Duration, error) {
	for range 200 {
		if err := call(); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, *requests)
	for i := range out {
		start := time.Now()
		if err := call(); err != nil {
			return nil, err
		}
		out[i] = time.Since(start)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/1e3) }

// throughput runs concurrent callers for the duration and returns calls/s.
func throughput(call func() error) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := call(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(n.Load()) / duration.Seconds(), nil
}
