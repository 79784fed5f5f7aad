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

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
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
	cfg, snap, err := latestDefinitions(ctx, f.repo)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))

	var topics []string
	for _, s := range snap.Defs.Sources {
		if s.Kind == registry.SourceKafka {
			topics = append(topics, s.Topic)
		}
	}
	sort.Strings(topics)
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
	applier, err := stream.NewApplier(snap.Defs, store, cfg.DataRoot(), stream.NewMetrics(metrics.Registerer()), nil)
	if err != nil {
		return err
	}
	if _, err := applier.Recover(*sf.recovery); err != nil {
		return err
	}
	current := func() *registry.Snapshot { return snap }
	srv, closeSrv, err := newServer(cfg, current, store, applier, metrics, log, serveAddrs{*grpcAddr, *httpAddr, *flightAddr})
	if err != nil {
		return err
	}
	defer closeSrv()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var streamErr error
	if len(topics) > 0 {
		opts, err := kafkaOptions(cfg, snap.Defs, brokers[0], sf, log)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			streamErr = applier.Consume(ctx, opts)
			if streamErr != nil {
				cancel()
			}
		}()
	}
	log.Info("dev", serverAttrs(srv, "registry_version", snap.Version, "kafka", brokers[0],
		"topics", topics, "partitions", strconv.Itoa(*partitions), "online", cfg.Online.Type)...)
	serveErr := srv.Serve(ctx)
	cancel()
	wg.Wait()
	return errors.Join(serveErr, streamErr)
}
