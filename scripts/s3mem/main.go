// Command s3mem serves an in-memory S3-protocol object store on a free
// loopback port for the demo (scripts/demo.sh): one bucket, "quiver",
// filled from local directories, until it is stopped. It prints the
// endpoint, then serves. Requests are not authenticated: it is for a tour
// on one machine, not for data.
//
//	go run ./scripts/s3mem -load data=rides/data > endpoint.txt &
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/quiverdata/quiver/internal/s3mem"
)

type loads []string

func (l *loads) String() string     { return strings.Join(*l, ",") }
func (l *loads) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var load loads
	flag.Var(&load, "load", "DIR=PREFIX: upload every file below DIR to keys below PREFIX (repeatable)")
	flag.Parse()
	if err := run(load); err != nil {
		fmt.Fprintln(os.Stderr, "s3mem:", err)
		os.Exit(1)
	}
}

func run(load []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := s3mem.Start()
	if err != nil {
		return err
	}
	defer srv.Close()
	for _, l := range load {
		dir, prefix, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("-load %q: want DIR=PREFIX", l)
		}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			return srv.Upload(ctx, p, strings.TrimSuffix(prefix, "/")+"/"+filepath.ToSlash(rel))
		})
		if err != nil {
			return err
		}
	}
	fmt.Println(srv.Endpoint())
	<-ctx.Done()
	return nil
}
