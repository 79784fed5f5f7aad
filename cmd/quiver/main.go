// Command quiver is the Quiver feature store's single binary: it checks,
// plans and applies feature definitions, and (as capabilities land) builds
// training sets, materializes, serves and streams.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/quiverdata/quiver/registry"
)

// version, and commit where the build information has none (a build with
// -buildvcs=false), are set at build time with
// -ldflags "-X main.version=… -X main.commit=…" (the Makefile does).
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalContext returns a context cancelled by the first SIGINT or
// SIGTERM, which commands take as the request to stop cleanly (servers
// drain, the stream commits its offsets). The first signal also restores
// the default handling, so that a second one ends the process at once
// whatever a command is doing.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done() // the signal, or stop when run returns
		stop()
	}()
	return ctx, stop
}

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitBreaking = 3 // plan --deny-breaking found breaking changes
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// env is what every command gets: its output streams.
type env struct {
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"init", "scaffold a feature repository from the quickstart: quiver init DIR", cmdInit},
		{"validate", "load and check the repository's definitions", cmdValidate},
		{"plan", "show what apply would change in the registry", cmdPlan},
		{"apply", "write the definitions as a new registry version", cmdApply},
		{"registry", "read the registry: list | describe NAME | history", cmdRegistry},
		{"training-set", "point-in-time training set to Parquet, or Arrow on stdout", cmdTrainingSet},
		{"materialize", "load the latest offline rows into the online store", cmdMaterialize},
		{"compact", "sort the views' rows once into compacted copies that training sets merge-join", cmdCompact},
		{"online", "look features up in the online store", cmdOnline},
		{"stream", "run the Kafka streaming materializer", cmdStream},
		{"verify", "compare the online store with training sets at the stream watermark", cmdVerify},
		{"serve", "serve online features over gRPC, HTTP and Arrow Flight", cmdServe},
		{"dev", "run a local broker, the streaming materializer and the servers in one process", cmdDev},
		{"import", "translate another feature store's definitions: import feast --registry FILE", cmdImport},
		{"version", "print quiver's version", cmdVersion},
	}
}

// usageError is a mistake in the command line; it exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError carries a specific exit code.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return exitOK
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		return report(stderr, c.name, err)
	}
	fmt.Fprintf(stderr, "quiver: unknown command %q (run quiver help)\n", args[0])
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "quiver: a feature store. Usage: quiver COMMAND [--repo DIR] [flags]")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	_ = tw.Flush() // like the lines around it, usage output reports no write error
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes --repo DIR (default: the current directory); paths given to the CLI are")
	fmt.Fprintln(w, "relative to the current directory. quiver COMMAND -h lists its flags; quiver --version prints the version.")
}

// report prints err as clear lines on stderr and returns the exit code.
func report(stderr io.Writer, cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitError
	var ue usageError
	var ce exitCodeError
	switch {
	case errors.As(err, &ue):
		code = exitUsage
	case errors.As(err, &ce):
		code = ce.code
	}
	if errors.Is(err, context.Canceled) {
		// The first SIGINT or SIGTERM: say so, not "context canceled".
		fmt.Fprintf(stderr, "quiver %s: interrupted\n", cmd)
		return code
	}
	var list registry.ErrorList
	if errors.As(err, &list) && len(list) > 1 {
		for _, e := range list {
			fmt.Fprintf(stderr, "quiver %s: %s\n", cmd, e)
		}
		fmt.Fprintf(stderr, "quiver %s: %d problems\n", cmd, len(list))
		return code
	}
	fmt.Fprintf(stderr, "quiver %s: %s\n", cmd, strings.TrimPrefix(err.Error(), "quiver: "))
	return code
}

// flags is a command's flag set with the common --repo flag.
type flags struct {
	*flag.FlagSet
	repo string
}

func newFlags(e *env, name, usage string) *flags {
	fs := flag.NewFlagSet("quiver "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f := &flags{FlagSet: fs}
	fs.StringVar(&f.repo, "repo", ".", "feature repository `DIR`")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: quiver %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return f
}

// parse parses flags anywhere among positional arguments and returns the
// positionals.
func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = f.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// positional checks the number of positional arguments.
func (f *flags) positional(args []string, min, max int, usage string) error {
	if len(args) < min || len(args) > max {
		return usageError{"usage: quiver " + usage}
	}
	return nil
}

func cmdVersion(_ context.Context, e *env, args []string) error {
	f := newFlags(e, "version", "version")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, "version"); err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, versionLine())
	return err
}

// versionLine is quiver's version, the commit it was built from and the
// Go toolchain, from the build information the Go linker embeds:
// "quiver dev, commit 0123456789ab (modified), go1.26.0 linux/amd64".
func versionLine() string {
	v, rev, modified := version, commit, false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version // go install …@version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	switch {
	case rev == "":
		rev = "commit unknown"
	case len(rev) > 12:
		rev = "commit " + rev[:12]
	default:
		rev = "commit " + rev
	}
	if modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("quiver %s, %s, %s %s/%s", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
