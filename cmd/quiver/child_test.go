package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestMain lets tests run the quiver binary as a child process: the test
// binary itself, re-executed with QUIVER_TEST_CHILD=1, runs the CLI.
func TestMain(m *testing.M) {
	if os.Getenv("QUIVER_TEST_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
