package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
)

const streamUsage = "stream [--brokers HOST:PORT,...] [--group NAME] [--metrics ADDR] [--reload DURATION]"

// streamFlags are the flags that quiver stream and quiver dev share.
type streamFlags struct {
	group    *string
	flush    *time.Duration
	dlq      *string
	recovery *time.Duration
	session  *time.Duration
	reload   *time.Duration
}

func addStreamFlags(f *flags) streamFlags {
	return streamFlags{
		group:    f.String("group", "", "consumer `GROUP` (default quiver-<project>); a new group starts from the earliest retained offset"),
		flush:    f.Duration("flush-interval", time.Second, "how long a partition buffers before its offline log is written and its offset committed"),
		dlq:      f.String("dead-letter-suffix", ".dlq", "dead-letter topic of a source topic: topic + `SUFFIX`"),
		session:  f.Duration("session-timeout", 10*time.Second, "how long the group waits for a silent member before giving its partitions to others"),
		recovery: f.Duration("orphan-grace", time.Hour, "remove uncommitted offline-log files older than this at start"),
		reload:   f.Duration("reload", 2*time.Second, "how often to look for a new registry version (the stream restarts on it)"),
	}
}

func cmdStream(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "stream", streamUsage)
	brokers := f.String("brokers", "", "Kafka `BROKERS`, comma-separated (default: the sources' brokers, else kafka.brokers)")
	metricsAddr := f.String("metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics, and /healthz and /readyz (503 while a partition is stalled) (default off)")
	sf := addStreamFlags(f)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, streamUsage); err != nil {
		return err
	}
	cfg, err := loadConfig(f.repo)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watcher, changed, err := followRegistry(ctx, cfg, *sf.reload, log, "streaming")
	if err != nil {
		return err
	}
	store, err := online.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	metrics := stream.NewMetrics(reg)
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.Handle("/readyz", streamReadyz(metrics.Stalls, time.Now))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "error", err)
			}
		}()
		defer srv.Close()
		log.Info("metrics", "addr", ln.Addr().String())
	}
	r := &streamRunner{cfg: cfg, current: watcher.Current, changed: changed, store: store,
		metrics: metrics, brokers: *brokers, flags: sf, log: log}
	return r.run(ctx)
}

// streamReadyz answers 200 while no partition is stalled, and 503 naming
// the stalled partitions (topic, partition, what fails, for how long)
// while any is. The errors themselves are in the log, not here.
func streamReadyz(stalled func() []stream.Stall, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		stalls := stalled()
		if len(stalls) == 0 {
			fmt.Fprintln(w, "ok")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, line := range stallLines(stalls, now()) {
			fmt.Fprintln(w, line)
		}
	})
}

// stallLines says, one line a partition, which partitions are stalled,
// what fails and for how long.
func stallLines(stalls []stream.Stall, now time.Time) []string {
	out := make([]string, len(stalls))
	for i, st := range stalls {
		out[i] = fmt.Sprintf("partition %s/%d stalled: %s failing for %s", st.Topic, st.Partition, st.Op, now.Sub(st.Since).Round(time.Second))
	}
	return out
}

// describeStalls is stallLines on one line.
func describeStalls(stalls []stream.Stall, now time.Time) string {
	return strings.Join(stallLines(stalls, now), "; ")
}

// followRegistry watches the registry for new applied versions until ctx
// ends, logging them; changed receives a value after each (a missed one
// is folded into the next). what names the work that goes on with the
// current version when a reload fails.
func followRegistry(ctx context.Context, cfg *registry.Config, every time.Duration, log *slog.Logger, what string) (*registry.Watcher, <-chan struct{}, error) {
	regStore, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	changed := make(chan struct{}, 1)
	watcher, err := registry.NewWatcher(ctx, regStore, registry.WatchOptions{
		Interval: every,
		OnChange: func(old, new *registry.Snapshot) {
			log.Info("registry reloaded", "from_version", old.Version, "to_version", new.Version)
			select {
			case changed <- struct{}{}:
			default:
			}
		},
		OnError: func(err error) { log.Warn("registry reload failed; "+what+" the current version", "error", err) },
	})
	if err != nil {
		return nil, nil, err
	}
	go func() {
		if err := watcher.Run(ctx); err != nil {
			log.Error("registry watcher stopped", "error", err)
		}
	}()
	return watcher, changed, nil
}

// streamRunner runs the stream materializer over the current registry
// version, and on each new one stops the consumer the way a shutdown does
// (flush, commit, leave the group) and starts it on the new definitions.
type streamRunner struct {
	cfg     *registry.Config
	current func() *registry.Snapshot
	changed <-chan struct{}
	store   online.Store
	metrics *stream.Metrics
	brokers string // the --brokers flag
	flags   streamFlags
	log     *slog.Logger
	// prepare, when set, runs before each start with the definitions
	// about to be streamed (quiver dev creates their topics).
	prepare func(*registry.Definitions) error
	// idle: a version without kafka sources waits for the next version
	// instead of failing (quiver dev serves pushes meanwhile).
	idle bool
}

func (r *streamRunner) run(ctx context.Context) error {
	for first := true; ; first = false {
		snap := r.current()
		applier, err := stream.NewApplierStore(ctx, snap.Defs, r.store, r.cfg.DataRoot(), storage.NewStore(r.cfg.StorageConfig()), r.metrics, nil)
		if err != nil {
			return err
		}
		if first {
			if n, err := applier.Recover(*r.flags.recovery); err != nil {
				return err
			} else if n > 0 {
				r.log.Info("removed uncommitted offline-log files", "files", n)
			}
		}
		topics, err := applier.Topics()
		if err != nil {
			return err
		}
		if len(topics) == 0 && r.idle {
			r.log.Info("no kafka sources to stream", "registry_version", snap.Version)
			select {
			case <-ctx.Done():
				return nil
			case <-r.changed:
				continue
			}
		}
		if r.prepare != nil {
			if err := r.prepare(snap.Defs); err != nil {
				return err
			}
		}
		opts, err := kafkaOptions(r.cfg, snap.Defs, r.brokers, r.flags, r.log)
		if err != nil {
			return err
		}
		r.log.Info("streaming", "registry_version", snap.Version, "brokers", strings.Join(opts.Brokers, ","), "group", opts.Group, "online", r.cfg.Online.Type)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- applier.Consume(runCtx, opts) }()
		select {
		case err := <-done:
			stop()
			return err
		case <-r.changed:
			stop()
			if err := <-done; err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

// kafkaOptions resolves the brokers: the flag, else the brokers that the
// kafka sources name, else quiver.yaml's kafka.brokers.
func kafkaOptions(cfg *registry.Config, defs *registry.Definitions, flag string, sf streamFlags, log *slog.Logger) (stream.KafkaOptions, error) {
	opts := stream.KafkaOptions{Group: *sf.group, FlushInterval: *sf.flush, SessionTimeout: *sf.session, DeadLetterSuffix: *sf.dlq, Logger: log}
	if opts.Group == "" {
		opts.Group = stream.DefaultGroup(defs.Project)
	}
	switch {
	case flag != "":
		opts.Brokers = strings.Split(flag, ",")
	default:
		for _, s := range defs.Sources {
			if s.Kind == registry.SourceKafka && len(s.Brokers) > 0 && opts.Brokers == nil {
				for _, b := range s.Brokers {
					expanded, err := registry.ExpandEnv(b)
					if err != nil {
						return opts, fmt.Errorf("source %s: brokers: %w", s.Name, err)
					}
					opts.Brokers = append(opts.Brokers, strings.Split(expanded, ",")...)
				}
			}
		}
		if opts.Brokers == nil {
			if err := cfg.Require("kafka.brokers"); err != nil {
				return opts, err
			}
			opts.Brokers = cfg.Kafka.Brokers
		}
	}
	return opts, nil
}
