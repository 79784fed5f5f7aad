package kafkatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Kafka is an Apache Kafka broker process started by StartKafka: one
// node, broker and controller in one (KRaft), on two loopback ports.
type Kafka = realBroker

// realBroker is an Apache Kafka process.
type realBroker struct {
	cmd     *exec.Cmd
	dir     string
	addr    string
	version string
	argv    []string // the broker's command line
	exited  chan struct{}
}

// startTimeout bounds a broker's start (formatting its storage, the JVM's
// start, the controller's election, the broker's registration).
const startTimeout = 90 * time.Second

// startReal starts a broker for the test in a directory of the test's,
// stopped when the test ends.
func startReal(t testing.TB, home string) *realBroker {
	t.Helper()
	rb, err := StartKafka(home, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rb.Close)
	return rb
}

// StartKafka formats a new KRaft log directory under dir and starts a
// combined broker and controller on two free loopback ports, from the
// jars in home/libs (scripts/kafka.sh), with the machine's Java
// (JAVA_HOME, else java on PATH). It retries once on other ports when the
// first start fails (another process may take a port between its choice
// and the bind). Close stops it.
func StartKafka(home, dir string) (*Kafka, error) {
	jars, err := filepath.Glob(filepath.Join(home, "libs", "kafka_*.jar"))
	if err != nil || len(jars) == 0 {
		return nil, fmt.Errorf("QUIVER_KAFKA_HOME=%s: no libs/kafka_*.jar there (scripts/kafka.sh prints the directory to use)", home)
	}
	m := regexp.MustCompile(`kafka_[0-9.]+-(.+)\.jar$`).FindStringSubmatch(jars[0])
	version := "?"
	if m != nil {
		version = m[1]
	}
	java := "java"
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		java = filepath.Join(jh, "bin", "java")
	}
	if _, err := exec.LookPath(java); err != nil {
		return nil, fmt.Errorf("no Java to run the Kafka broker (%s): %w", java, err)
	}
	var lastErr error
	for attempt := range 2 {
		rb, err := launch(filepath.Join(dir, fmt.Sprintf("kafka-%d", attempt)), java, home, version)
		if err == nil {
			return rb, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start Apache Kafka %s: %w", version, lastErr)
}

// Addr is the broker's address.
func (rb *realBroker) Addr() string { return rb.addr }

// Version is the broker's version, from its jar's name.
func (rb *realBroker) Version() string { return rb.version }

func launch(dir, java, home, version string) (*realBroker, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	ctrl := fmt.Sprintf("127.0.0.1:%d", ports[1])
	props := strings.Join([]string{
		"process.roles=broker,controller",
		"node.id=1",
		"controller.quorum.voters=1@" + ctrl,
		"listeners=PLAINTEXT://" + addr + ",CONTROLLER://" + ctrl,
		"advertised.listeners=PLAINTEXT://" + addr,
		"controller.listener.names=CONTROLLER",
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"inter.broker.listener.name=PLAINTEXT",
		"log.dirs=" + filepath.Join(dir, "data"),
		"num.partitions=1",
		"auto.create.topics.enable=true",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=3",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		// Members join at once: tests start consumers and expect them
		// to take partitions in seconds, not after the 3 s default.
		"group.initial.rebalance.delay.ms=0",
		// Tests use session timeouts down to 500 ms.
		"group.min.session.timeout.ms=500",
		"",
	}, "\n")
	cfg := filepath.Join(dir, "server.properties")
	logCfg := filepath.Join(dir, "log4j2.yaml")
	logFile := filepath.Join(dir, "broker.log")
	if err := os.WriteFile(cfg, []byte(props), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(logCfg, []byte(log4jConfig(logFile)), 0o644); err != nil {
		return nil, err
	}
	cp := filepath.Join(home, "libs", "*")
	jvm := []string{"-Xms128m", "-Xmx768m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + logCfg, "-cp", cp}
	format := exec.Command(java, append(jvm, "kafka.tools.StorageTool", "format", "-t", clusterID(), "-c", cfg)...)
	if out, err := format.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("format the log directory: %v\n%s", err, out)
	}
	rb := &realBroker{dir: dir, addr: addr, version: version, argv: append([]string{java}, append(jvm, "kafka.Kafka", cfg)...)}
	if err := rb.start(); err != nil {
		return nil, err
	}
	return rb, nil
}

// start runs the broker's process over its directory and waits until it
// answers.
func (rb *realBroker) start() error {
	cmd := exec.Command(rb.argv[0], rb.argv[1:]...)
	stdout, err := os.OpenFile(filepath.Join(rb.dir, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stdout.Close()
	cmd.Stdout, cmd.Stderr = stdout, stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	rb.cmd, rb.exited = cmd, exited
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := rb.awaitReady(); err != nil {
		rb.Close()
		return fmt.Errorf("%v\n--- broker log:\n%s", err, rb.logTail(8<<10))
	}
	return nil
}

// Restart kills the broker with SIGKILL (no controlled shutdown: what a
// crash or a lost node does) and starts it again over the same log
// directory and ports, returning once it answers again. Acknowledged
// messages survive: the broker acknowledges after the write to the page
// cache, which a killed process does not lose.
func (rb *realBroker) Restart() error {
	rb.Close()
	return rb.start()
}

// awaitReady waits until the broker answers metadata requests naming
// itself, or exits, or startTimeout passes.
func (rb *realBroker) awaitReady() error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-rb.exited:
			return fmt.Errorf("the broker exited: %v", rb.cmd.ProcessState)
		default:
		}
		conn, err := (&kafka.Dialer{Timeout: time.Second}).Dial("tcp", rb.addr)
		if err == nil {
			brokers, berr := conn.Brokers()
			_, cerr := conn.Controller()
			conn.Close()
			if berr == nil && cerr == nil && len(brokers) > 0 && rb.coordinatorReady() {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the broker did not answer at %s within %s", rb.addr, startTimeout)
}

// coordinatorReady asks for a group coordinator, which makes a new
// broker create its offsets topic, and says whether one answered. A
// consumer that joins a group before then gets "group coordinator not
// available" (the stream retries it; tests would only wait longer).
func (rb *realBroker) coordinatorReady() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// A transport of its own: kafka-go's default one caches the cluster's
	// metadata for 6 s, and a writer of a topic created since would be
	// told the topic does not exist.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(rb.addr), Timeout: 2 * time.Second, Transport: tr}
	resp, err := c.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: "kafkatest", KeyType: kafka.CoordinatorKeyTypeConsumer})
	return err == nil && resp.Error == nil
}

// Close kills the broker: its log directory is thrown away after, so
// there is nothing to shut down cleanly.
func (rb *realBroker) Close() {
	select {
	case <-rb.exited:
		return
	default:
	}
	_ = rb.cmd.Process.Kill()
	<-rb.exited
}

// Log returns the last n bytes of the broker's output and log.
func (rb *realBroker) Log(n int) string { return rb.logTail(n) }

func (rb *realBroker) logTail(n int) string {
	var all []byte
	for _, f := range []string{"stdout", "broker.log"} {
		data, _ := os.ReadFile(filepath.Join(rb.dir, f))
		all = append(all, data...)
	}
	if len(all) > n {
		all = all[len(all)-n:]
		if i := bytes.IndexByte(all, '\n'); i >= 0 {
			all = all[i+1:]
		}
	}
	return string(all)
}

// log4jConfig writes the broker's log (INFO and up, its own loggers at
// WARN where they are chatty) to a file in its directory.
func log4jConfig(file string) string {
	return `Configuration:
  Appenders:
    File:
      name: file
      fileName: "` + file + `"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka.log
        level: WARN
      - name: org.apache.kafka.storage
        level: WARN
    Root:
      level: INFO
      AppenderRef:
        ref: file
`
}

// clusterID is a new KRaft cluster id: 16 random bytes, base64 without
// padding (what kafka-storage random-uuid prints).
func clusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// freePorts returns n loopback ports free at the moment of the call.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
