package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
	"github.com/quiverdata/quiver/storage"
)

const serveUsage = "serve [--grpc ADDR] [--http ADDR] [--flight ADDR]"

func cmdServe(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "serve", serveUsage)
	grpcAddr := f.String("grpc", "", "gRPC `ADDR` (default serve.grpc; \"off\" to disable)")
	httpAddr := f.String("http", "", "HTTP `ADDR` (default serve.http; \"off\" to disable)")
	flightAddr := f.String("flight", "", "Arrow Flight `ADDR` (default serve.flight; \"off\" to disable)")
	reload := f.Duration("reload", 2*time.Second, "how often to look for a new registry version")
	drain := f.Duration("drain-delay", -1, "after SIGTERM, go on serving this long while /readyz answers 503 and gRPC health NOT_SERVING, then drain (default serve.drain_delay, else 0)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, serveUsage); err != nil {
		return err
	}
	cfg, err := loadConfig(f.repo)
	if err != nil {
		return err
	}
	if err := cfg.Require("serve"); err != nil {
		return err
	}
	if *drain >= 0 {
		cfg.Serve.DrainDelay = registry.Duration(*drain)
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	online.SetRedisLogger(log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watcher, _, err := followRegistry(ctx, cfg, *reload, log, "serving")
	if err != nil {
		return err
	}
	rawStore, err := online.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer rawStore.Close()
	metrics := server.NewMetrics()
	store := metrics.InstrumentStore(rawStore)
	pusher := newVersionPusher(watcher.Current, store, cfg.DataRoot(), storage.NewStore(cfg.StorageConfig()), stream.NewMetrics(metrics.Registerer()))
	srv, closeSrv, err := newServer(cfg, watcher.Current, store, pusher, metrics, log,
		serveAddrs{*grpcAddr, *httpAddr, *flightAddr}, nil)
	if err != nil {
		return err
	}
	defer closeSrv()
	log.Info("serving", serverAttrs(srv, "registry_version", watcher.Current().Version, "online", cfg.Online.Type)...)
	if err := srv.Serve(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// serveAddrs are the --grpc, --http and --flight flags: empty for the
// configured address, "off" for none.
type serveAddrs struct{ grpc, http, flight string }

// newServer builds the serving surfaces over store, taking pushes through
// pusher; close releases what it opened (the offline engine behind
// Flight). The server is ready while the store answers and stalls (nil
// when no stream runs in this process) names no stalled partition.
func newServer(cfg *registry.Config, current func() *registry.Snapshot, store online.Store, pusher server.Pusher, metrics *server.Metrics, log *slog.Logger, addrs serveAddrs, stalls func() []stream.Stall) (*server.Server, func(), error) {
	pick := func(flag, conf string) string {
		switch flag {
		case "":
			return conf
		case "off":
			return ""
		}
		return flag
	}
	// go-redis's own lines (its pool's failed dials) go to the server's
	// structured log, not to stderr.
	online.SetRedisLogger(log)
	lookup := online.NewLookup(store, online.LookupOptions{})
	limits := server.Limits{MaxEntities: cfg.Serve.MaxEntities}
	serving := server.NewServing(lookup, current, limits, version)
	serving.SetPusher(pusher)
	scfg := server.Config{
		GRPCAddr: pick(addrs.grpc, cfg.Serve.GRPC), HTTPAddr: pick(addrs.http, cfg.Serve.HTTP),
		FlightAddr: pick(addrs.flight, cfg.Serve.Flight),
		AuthToken:  cfg.Serve.AuthToken, Logger: log, Metrics: metrics,
		ReadTimeout: cfg.Serve.ReadTimeout.Std(), WriteTimeout: cfg.Serve.WriteTimeout.Std(),
		IdleTimeout: cfg.Serve.IdleTimeout.Std(), RequestTimeout: cfg.Serve.RequestTimeout.Std(),
		MaxConnections: cfg.Serve.MaxConnections, MaxConcurrentStreams: uint32(cfg.Serve.MaxConcurrentStreams),
		DrainDelay: cfg.Serve.DrainDelay.Std(), ShutdownTimeout: cfg.Serve.ShutdownTimeout.Std(),
	}
	closer := func() {}
	if scfg.FlightAddr != "" {
		off, err := offline.Open(offline.OptionsFromConfig(cfg))
		if err != nil {
			return nil, nil, err
		}
		closer = func() {
			if err := off.Close(); err != nil {
				log.Warn("close offline engine", "error", err)
			}
		}
		fl := cfg.Serve.FlightLimits
		ipc := server.WithIPCLimits(server.IPCLimits{MaxMetadataBytes: fl.MaxMetadataBytes, MaxMessageBytes: fl.MaxMessageBytes,
			MaxStreamBytes: fl.MaxStreamBytes, MaxFields: fl.MaxFields, MaxDepth: fl.MaxDepth, MaxBatchRows: fl.MaxBatchRows})
		if scfg.Flight, err = server.NewFlightService(off, lookup, current, cfg.DataRoot(), limits, ipc); err != nil {
			closer()
			return nil, nil, err
		}
	}
	if t := cfg.Serve.TLS; t != nil {
		scfg.TLSCertFile, scfg.TLSKeyFile = cfg.Abs(t.CertFile), cfg.Abs(t.KeyFile)
	}
	srv, err := server.New(scfg, serving, readyFunc(store, cfg.Project, stalls, time.Now))
	if err != nil {
		closer()
		return nil, nil, err
	}
	return srv, closer, nil
}

// readyFunc is the server's ready function: the online store answers
// (its cause stays in the log), then no stream partition of this process
// is stalled (a *server.NotReadyError naming each, what fails and for how
// long, as quiver stream's /readyz does).
func readyFunc(store online.Store, project string, stalls func() []stream.Stall, now func() time.Time) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := store.GetMeta(ctx, project, "ready"); err != nil {
			return err
		}
		if stalls == nil {
			return nil
		}
		st := stalls()
		if len(st) == 0 {
			return nil
		}
		return &server.NotReadyError{Reason: describeStalls(st, now())}
	}
}

// serverAttrs are log attributes naming the addresses srv listens on.
func serverAttrs(srv *server.Server, attrs ...any) []any {
	if a := srv.GRPCAddr(); a != nil {
		attrs = append(attrs, "grpc", a.String())
	}
	if a := srv.HTTPAddr(); a != nil {
		attrs = append(attrs, "http", a.String())
	}
	if a := srv.FlightAddr(); a != nil {
		attrs = append(attrs, "flight", a.String())
	}
	return attrs
}
