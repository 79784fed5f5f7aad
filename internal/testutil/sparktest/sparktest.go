package sparktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/sparkconnect"
)

const (
	// HomeEnv names the variable that points at the Spark installation:
	// the directory scripts/spark.sh prints.
	HomeEnv = "QUIVER_SPARK_HOME"
	// serverClass is the Spark Connect server's main class.
	serverClass = "org.apache.spark.sql.connect.service.SparkConnectServer"
	// readyTimeout bounds a start: a cold JVM and SparkContext on a busy
	// two-core machine take well over half a minute.
	readyTimeout = 3 * time.Minute
	// probeTimeout bounds one readiness probe once the port is open.
	probeTimeout = 20 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// startAttempts bounds the retries of a start that lost its port.
	startAttempts = 3
	// logTailLines is how much of the server's output errors quote.
	logTailLines = 40
	// ownerKey is a setting whose value is unique to each server (it is in
	// the server's directory), read back to make sure that the server that
	// answers is the one that was started. A setting of one's own would be
	// plainer, but a session reads only the settings Spark knows.
	ownerKey = "spark.sql.warehouse.dir"
)

var errExited = errors.New("spark connect server exited before it was ready")

// Option configures [Start] and [Launch].
type Option func(*config)

type config struct {
	conf map[string]string
}

// WithConf sets a Spark setting (--conf key=value), overriding the
// default Start gives it, if any.
func WithConf(key, value string) Option {
	return func(c *config) { c.conf[key] = value }
}

// Server is a Spark Connect server process.
type Server struct {
	port    int
	dir     string
	logFile string
	// Started is how long the server took from launch to its first
	// session.
	Started time.Duration

	cmd      *exec.Cmd
	exited   chan struct{} // closed once cmd.Wait has returned
	waitErr  error         // cmd.Wait's result; read only after exited is closed
	stopOnce sync.Once
	stopErr  error
}

// S3AJarsEnv names the directory of the jars that let the server read
// s3a:// paths (scripts/spark-s3a.sh).
const S3AJarsEnv = "QUIVER_SPARK_S3A_JARS"

// WithS3A puts the s3a jars of $QUIVER_SPARK_S3A_JARS on the server's
// class path and gives it the credentials (the cluster's own, as in
// production; endpoints and path style come from each session's
// settings). It reports false, and the server reads no s3a:// path, when
// the variable is unset.
func WithS3A(accessKey, secretKey string) (Option, bool) {
	dir := os.Getenv(S3AJarsEnv)
	if dir == "" {
		return func(*config) {}, false
	}
	return func(c *config) {
		c.conf["spark.driver.extraClassPath"] = filepath.Join(dir, "*")
		c.conf["spark.hadoop.fs.s3a.access.key"] = accessKey
		c.conf["spark.hadoop.fs.s3a.secret.key"] = secretKey
	}, true
}

// RequireS3A skips the test, or fails it when CI is "true", unless
// WithS3A had the jars.
func RequireS3A(t testing.TB, ok bool) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf("%s is not set: run %s=$(scripts/spark-s3a.sh) go test ...", S3AJarsEnv, S3AJarsEnv)
	if os.Getenv("CI") == "true" {
		t.Fatalf("!!! %s, and CI=true: an integration test may not be skipped", msg)
	}
	t.Skipf("!!! SKIPPED, no s3a jars for Spark: %s; under CI=true this is a failure", msg)
}

// Home is the Spark installation to test against, $QUIVER_SPARK_HOME, or
// "" when it is unset.
func Home() string { return os.Getenv(HomeEnv) }

// Start runs a Spark Connect server for the test on a free 127.0.0.1 port
// and returns once it opens sessions. Its files are in a t.TempDir(), and
// t.Cleanup stops it. Without an installation (see [Home]) or Java the
// test is skipped, or fails when CI is "true".
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	home, java := requireInstall(t)
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var s *Server
		s, err = launch(t.Context(), home, java, t.TempDir(), opts)
		if err == nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Errorf("stop spark connect server: %v", err)
				}
				if t.Failed() {
					t.Logf("spark connect server %s (dir %s), last output:\n%s", s.Remote(), s.dir, s.LogTail())
				}
			})
			t.Logf("spark connect server %s ready after %v", s.Remote(), s.Started.Round(time.Millisecond))
			return s
		}
		// Only a lost port race is worth another try with a new port.
		if !errors.Is(err, errExited) || !strings.Contains(err.Error(), "BindException") {
			break
		}
	}
	t.Fatalf("start spark connect server: %v", err)
	return nil
}

// Launch runs a Spark Connect server, with its files in dir, for a caller
// without a testing.TB (TestMain): the caller must Stop it. It does not
// skip: a missing installation is an error.
func Launch(ctx context.Context, dir string, opts ...Option) (*Server, error) {
	home, java, err := findInstall()
	if err != nil {
		return nil, err
	}
	return launch(ctx, home, java, dir, opts)
}

// requireInstall finds the installation and Java, or skips (fails under
// CI=true) saying what is missing and how to get it.
func requireInstall(t testing.TB) (home, java string) {
	t.Helper()
	home, java, err := findInstall()
	if err == nil {
		return home, java
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("!!! %v, and CI=true: an integration test may not be skipped", err)
	}
	t.Skipf("!!! SKIPPED, no Spark: %v; under CI=true this is a failure", err)
	return "", ""
}

func findInstall() (home, java string, err error) {
	home = Home()
	if home == "" {
		return "", "", fmt.Errorf("%s is not set: run %s=$(scripts/spark.sh) go test ...", HomeEnv, HomeEnv)
	}
	submit := filepath.Join(home, "bin", "spark-submit")
	if _, err := os.Stat(submit); err != nil {
		return "", "", fmt.Errorf("%s=%s is not a Spark installation (run scripts/spark.sh): %w", HomeEnv, home, err)
	}
	if jars, _ := filepath.Glob(filepath.Join(home, "jars", "spark-connect_*.jar")); len(jars) == 0 {
		return "", "", fmt.Errorf("%s=%s has no jars/spark-connect_*.jar: it cannot run a Spark Connect server", HomeEnv, home)
	}
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		java = filepath.Join(jh, "bin", "java")
		if _, err := os.Stat(java); err != nil {
			return "", "", fmt.Errorf("JAVA_HOME=%s has no bin/java: %w", jh, err)
		}
		return home, java, nil
	}
	java, err = exec.LookPath("java")
	if err != nil {
		return "", "", fmt.Errorf("no Java: set JAVA_HOME or put java (17) on PATH (Debian: apt-get install openjdk-17-jre-headless): %w", err)
	}
	return home, java, nil
}

// defaults are the settings of a test server, before WithConf.
func defaults(dir string, port int) map[string]string {
	tmp := filepath.Join(dir, "tmp")
	return map[string]string{
		"spark.master":                           "local[2]",
		"spark.app.name":                         "quiver-test",
		"spark.driver.memory":                    "1g",
		"spark.driver.host":                      "127.0.0.1",
		"spark.driver.bindAddress":               "127.0.0.1",
		"spark.driver.extraJavaOptions":          "-Djava.io.tmpdir=" + tmp,
		"spark.connect.grpc.binding.address":     "127.0.0.1",
		"spark.connect.grpc.binding.port":        strconv.Itoa(port),
		"spark.ui.enabled":                       "false",
		"spark.ui.showConsoleProgress":           "false",
		"spark.sql.shuffle.partitions":           "2",
		"spark.default.parallelism":              "2",
		"spark.sql.session.timeZone":             "UTC",
		"spark.sql.catalogImplementation":        "in-memory",
		"spark.sql.warehouse.dir":                filepath.Join(dir, "warehouse"),
		"spark.local.dir":                        filepath.Join(dir, "local"),
		"spark.sql.streaming.checkpointLocation": filepath.Join(dir, "checkpoints"),
	}
}

func launch(ctx context.Context, home, java, dir string, opts []Option) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := config{conf: defaults(dir, port)}
	for _, opt := range opts {
		opt(&cfg)
	}
	token := filepath.Join(dir, "warehouse")
	cfg.conf[ownerKey] = token
	for _, sub := range []string{"tmp", "conf", "local"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create server directory: %w", err)
		}
	}

	s := &Server{
		port:    port,
		dir:     dir,
		logFile: filepath.Join(dir, "spark.log"),
		exited:  make(chan struct{}),
	}
	out, err := os.Create(s.logFile)
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	defer out.Close() // the child has its own descriptor

	args := []string{filepath.Join(home, "bin", "spark-submit"), "--class", serverClass}
	for _, k := range slices.Sorted(maps.Keys(cfg.conf)) {
		args = append(args, "--conf", k+"="+cfg.conf[k])
	}
	s.cmd = exec.Command("bash", args...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.Env = append(os.Environ(),
		"SPARK_HOME="+home,
		"JAVA_HOME="+filepath.Dir(filepath.Dir(java)),
		// An empty configuration directory: nothing from the machine's
		// spark-defaults.conf or spark-env.sh.
		"SPARK_CONF_DIR="+filepath.Join(dir, "conf"),
		"SPARK_LOCAL_IP=127.0.0.1",
		"SPARK_LOCAL_DIRS="+filepath.Join(dir, "local"),
	)
	setProcessGroup(s.cmd)
	began := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", args[0], err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, token, began.Add(readyTimeout)); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("%w; last output:\n%s", err, s.LogTail())
	}
	s.Started = time.Since(began)
	return s, nil
}

// waitReady waits for the port to open, then for a session to read back
// the server's token.
func (s *Server) waitReady(ctx context.Context, token string, deadline time.Time) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%w (port %d): %v", errExited, s.port, s.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("spark connect server on %s not ready after %v: %v", s.Addr(), readyTimeout, last)
		}
		if last = s.probe(ctx, token); last == nil {
			return nil
		}
		select {
		case <-s.exited:
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// probe opens a session and reads the server's warehouse directory, which
// Spark reports as a file: URL.
func (s *Server) probe(ctx context.Context, token string) (err error) {
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return err
	}
	if err := conn.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	session, err := sparkconnect.Dial(ctx, s.Remote(), sparkconnect.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, session.Close()) }()
	got, err := session.Conf(ctx, ownerKey)
	if err != nil {
		return err
	}
	if strings.TrimPrefix(got, "file:") != token {
		return fmt.Errorf("another server answers on %s (%s %q, want %q)", s.Addr(), ownerKey, got, token)
	}
	return nil
}

// Remote is the server's Spark Connect address, "sc://127.0.0.1:port".
func (s *Server) Remote() string { return "sc://" + s.Addr() }

// Addr is the server's gRPC address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Dir is the server's directory: its log, warehouse and scratch space.
func (s *Server) Dir() string { return s.dir }

// Exited is closed when the server's process has ended.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Stop ends the server and every process of its group: SIGTERM, then
// SIGKILL if they have not ended after 10s. It waits for the launcher to
// exit and is safe to call more than once; t.Cleanup calls it too.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		pid := s.cmd.Process.Pid
		select {
		case <-s.exited:
		default:
			if err := signalGroup(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
				s.stopErr = fmt.Errorf("signal spark connect server %d: %w", pid, err)
			}
			select {
			case <-s.exited:
			case <-time.After(stopTimeout):
				s.stopErr = fmt.Errorf("spark connect server %d still running %v after SIGTERM: killed", pid, stopTimeout)
			}
		}
		// Whatever is left of the group (the JVM's own children).
		_ = signalGroup(pid, syscall.SIGKILL)
		<-s.exited
	})
	return s.stopErr
}

// LogTail is the end of the server's output.
func (s *Server) LogTail() string {
	data, err := os.ReadFile(s.logFile)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", s.logFile, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "(no output)"
	}
	return strings.Join(lines, "\n")
}

// Log is all of the server's output so far.
func (s *Server) Log() (string, error) {
	data, err := os.ReadFile(s.logFile)
	return string(data), err
}

// freePort returns a 127.0.0.1 port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	addr, ok := ln.Addr().(*net.TCPAddr)
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	if !ok {
		return 0, fmt.Errorf("find a free port: %v is not a TCP address", ln.Addr())
	}
	return addr.Port, nil
}
