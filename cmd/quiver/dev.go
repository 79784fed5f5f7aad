package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
	"github.com/quiverdata/quiver/storage"
)

const devUsage = "dev [--kafka-port N] [--partitions N] [--grpc ADDR] [--http ADDR] [--flight ADDR]"

// cmdDev runs everything in one process on local defaults: an in-process
// Kafka-protocol broker holding the kafka sources' topics, the streaming
// materializer consuming them, and the serving surfaces (with push), over
// one online store, which is how the embedded store, held by one process
// at a time, serves them all.
func cmdDev(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "dev", devUsage)
	kafkaPort := f.Int("kafka-port", 9092, "`PORT` of the in-process Kafka-protocol broker on 127.0.0.1 (0: any free port)")
	partitions := f.Int("partitions", 3, "partitions of each topic the broker creates")
	grpcAddr := f.String("grpc", "", "gRPC `ADDR` (default serve.grpc; \"off\" to disable)")
	httpAddr := f.String("http", "", "HTTP `ADDR` (default serve.http; \"off\" to disable)")
	flightAddr := f.String("flight", "", "Arrow Flight `ADDR` (default serve.flight; \"off\" to disable)")
	sf := addStreamFlags(f)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, devUsage); err != nil {
		return err
	}
	cfg, err := loadConfig(f.repo)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watcher, changed, err := followRegistry(ctx, cfg, *sf.reload, log, "serving and streaming")
	if err != nil {
		return err
	}
	snap := watcher.Current()
	topics := kafkaTopics(snap.Defs)
	cluster, err := kfake.NewCluster(kfake.Ports(*kafkaPort), kfake.DataDir(cfg.Abs(".quiver/kafka")),
		kfake.SeedTopics(int32(*partitions), topics...), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		return fmt.Errorf("start the in-process Kafka broker on port %d: %w", *kafkaPort, err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	rawStore, err := online.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer rawStore.Close()
	metrics := server.NewMetrics()
	store := metrics.InstrumentStore(rawStore)
	streamMetrics := stream.NewMetrics(metrics.Registerer())
	pusher := newVersionPusher(watcher.Current, store, cfg.DataRoot(), storage.NewStore(cfg.StorageConfig()), streamMetrics)
	srv, closeSrv, err := newServer(cfg, watcher.Current, store, pusher, metrics, log, serveAddrs{*grpcAddr, *httpAddr, *flightAddr}, streamMetrics.Stalls)
	if err != nil {
		return err
	}
	defer closeSrv()

	r := &streamRunner{cfg: cfg, current: watcher.Current, changed: changed, store: store, metrics: streamMetrics,
		brokers: brokers[0], flags: sf, log: log, idle: true,
		// A new version's topics are created on the broker before the
		// stream subscribes to them.
		prepare: func(defs *registry.Definitions) error {
			for _, t := range kafkaTopics(defs) {
				if err := cluster.CreateTopic(t, int32(*partitions), nil); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
					return fmt.Errorf("create topic %s: %w", t, err)
				}
			}
			return nil
		}}
	var wg sync.WaitGroup
	var streamErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if streamErr = r.run(ctx); streamErr != nil {
			cancel()
		}
	}()
	log.Info("dev", serverAttrs(srv, "registry_version", snap.Version, "kafka", brokers[0],
		"topics", topics, "partitions", strconv.Itoa(*partitions), "online", cfg.Online.Type)...)
	serveErr := srv.Serve(ctx)
	cancel()
	wg.Wait()
	return errors.Join(serveErr, streamErr)
}

// kafkaTopics returns the topics of the kafka sources, sorted.
func kafkaTopics(defs *registry.Definitions) []string {
	var topics []string
	for _, s := range defs.Sources {
		if s.Kind == registry.SourceKafka {
			topics = append(topics, s.Topic)
		}
	}
	sort.Strings(topics)
	return topics
}
