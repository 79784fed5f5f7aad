package registry

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/quiverdata/quiver/storage"
)

// ConfigFile is the name of a repository's project configuration.
const ConfigFile = "quiver.yaml"

// Config is a repository's quiver.yaml: the project name and where its
// stores are. Relative paths resolve against the repository directory.
type Config struct {
	Meta     `yaml:"-"`
	Project  string        `yaml:"project"`
	Registry string        `yaml:"registry"` // default .quiver/registry
	Offline  OfflineConfig `yaml:"offline"`
	Online   OnlineConfig  `yaml:"online"`
	Kafka    KafkaConfig   `yaml:"kafka"`
	Serve    ServeConfig   `yaml:"serve"`
	// Storage configures object stores (s3:// paths); see docs/storage.md.
	Storage storage.Config `yaml:"storage"`

	// Dir is the repository directory (absolute); not read from YAML.
	Dir string `yaml:"-"`
	// Unresolved lists ${VAR} references whose variable is unset and has no
	// default; Require reports those in the sections a command needs.
	Unresolved []Unresolved `yaml:"-"`
}

// OfflineConfig locates the offline store.
type OfflineConfig struct {
	// DataRoot is the directory source paths resolve against, or an
	// s3://bucket/prefix URI (default data).
	DataRoot string `yaml:"data_root"`
	// Engine builds training sets and latest rows: duckdb (embedded, the
	// default) or spark (a Spark Connect server, Spark).
	Engine string       `yaml:"engine"`
	DuckDB DuckDBConfig `yaml:"duckdb"`
	// Spark configures the spark engine (docs/scale-out.md).
	Spark SparkConfig `yaml:"spark"`
	// Cache bounds the local copies of Parquet objects read from object
	// storage (docs/storage.md).
	Cache CacheConfig `yaml:"cache"`
	// Compact is where quiver compact writes the views' compacted copies,
	// which training sets merge-join (docs/offline.md).
	Compact CompactConfig `yaml:"compact"`
}

// CompactConfig is offline.compact.
type CompactConfig struct {
	// Dir holds the compacted copies, relative to the repository
	// (default .quiver/compact).
	Dir string `yaml:"dir"`
}

// CacheConfig is offline.cache: where Parquet objects read from object
// storage are copied for DuckDB, and how much it may hold.
type CacheConfig struct {
	// Dir is the cache directory, relative to the repository (default:
	// quiver/objects in $XDG_CACHE_HOME or ~/.cache, else in the OS
	// temporary directory).
	Dir string `yaml:"dir"`
	// MaxBytes bounds the copies, e.g. 20GiB (default 10GiB).
	MaxBytes storage.ByteSize `yaml:"max_bytes"`
	// WholeObjects copies whole objects, never slices of the columns and
	// row groups a request reads (default false).
	WholeObjects bool `yaml:"whole_objects"`
}

// Offline engines.
const (
	EngineDuckDB = "duckdb"
	EngineSpark  = "spark"
)

// SparkConfig is offline.spark: the Spark Connect server the spark engine
// runs on.
type SparkConfig struct {
	// Remote is sc://host:port, with optional ;token=... and
	// ;use_ssl=true parameters.
	Remote string `yaml:"remote"`
	// Conf are runtime settings of every Spark session, e.g.
	// spark.sql.shuffle.partitions: "400".
	Conf map[string]string `yaml:"conf"`
	// Out says who writes a training set saved to a local Parquet path:
	// cluster (the default: Spark writes it, so the path must be on a
	// file system the cluster shares) or client (the rows stream here and
	// Quiver writes the file).
	Out string `yaml:"out"`
}

// Writers of a Spark training set's Parquet file (offline.spark.out).
const (
	SparkOutCluster = "cluster"
	SparkOutClient  = "client"
)

// DuckDBConfig tunes the embedded DuckDB engine.
type DuckDBConfig struct {
	// MemoryLimit caps DuckDB's memory, e.g. 4GB (default: DuckDB's, 80% of RAM).
	MemoryLimit string `yaml:"memory_limit"`
	// TempDirectory is where DuckDB spills (default .quiver/tmp).
	TempDirectory string `yaml:"temp_directory"`
	// Threads caps DuckDB's threads (default: one per core).
	Threads int `yaml:"threads"`
}

// Online store types.
const (
	OnlineEmbedded = "embedded"
	OnlineRedis    = "redis"
)

// OnlineConfig selects and connects the online store.
type OnlineConfig struct {
	// Type is embedded (default) or redis.
	Type string `yaml:"type"`
	// Path is the embedded store's directory (default .quiver/online).
	Path string `yaml:"path"`
	// Addr is a standalone Redis address; Addrs the seed nodes of a Redis
	// Cluster. A value may hold several comma-separated addresses.
	Addr     string   `yaml:"addr"`
	Addrs    []string `yaml:"addrs"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	DB       int      `yaml:"db"`
}

// KafkaConfig holds the default brokers of kafka sources.
type KafkaConfig struct {
	// Brokers are host:port addresses; an entry may hold several,
	// comma-separated (so one ${KAFKA_BROKERS} can name them all).
	Brokers []string `yaml:"brokers"`
}

// ServeConfig holds the serving addresses and request policy.
type ServeConfig struct {
	GRPC   string `yaml:"grpc"`   // default 127.0.0.1:6566
	HTTP   string `yaml:"http"`   // default 127.0.0.1:6567
	Flight string `yaml:"flight"` // default 127.0.0.1:8815
	// AuthToken, when set, is required as a bearer token on every request
	// but health checks; write it as ${VAR}, never in clear.
	AuthToken string `yaml:"auth_token"`
	// MaxEntities bounds the entity rows of one lookup (default 1000).
	MaxEntities int `yaml:"max_entities"`
	// TLS, when set, serves gRPC and HTTP over TLS.
	TLS *TLSConfig `yaml:"tls"`
	// Bounds of the serving surfaces; zero takes the server's defaults
	// (docs/security.md): HTTP read, write and idle timeouts, the time one
	// request may take, open connections per listener and concurrent
	// calls per gRPC connection.
	ReadTimeout          Duration `yaml:"read_timeout"`
	WriteTimeout         Duration `yaml:"write_timeout"`
	IdleTimeout          Duration `yaml:"idle_timeout"`
	RequestTimeout       Duration `yaml:"request_timeout"`
	MaxConnections       int      `yaml:"max_connections"`
	MaxConcurrentStreams int      `yaml:"max_concurrent_streams"`
	// DrainDelay is how long serve goes on answering after SIGTERM while
	// it reports not ready, so load balancers stop sending it requests
	// first (default 0); ShutdownTimeout then bounds the drain of the
	// requests in flight (default 10s).
	DrainDelay      Duration `yaml:"drain_delay"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// FlightLimits bound the Arrow IPC that Flight decodes from outside
	// (client streams, saved datasets); zero takes the defaults.
	FlightLimits FlightLimits `yaml:"flight_limits"`
}

// MaxFlightMessageBytes is the most one Flight message may carry either
// way (gRPC's cap on the Flight port), so the most a message's body may be.
const MaxFlightMessageBytes = 64 << 20

// FlightLimits bound the Arrow IPC the Flight server decodes from outside
// before it decodes it (docs/security.md, "Arrow IPC input"). Zero fields
// take the defaults given with each.
type FlightLimits struct {
	// MaxMetadataBytes bounds one message's metadata and a file's footer
	// (default 4 MiB).
	MaxMetadataBytes int `yaml:"max_metadata_bytes"`
	// MaxMessageBytes bounds one message's body, as sent and as decoded
	// (default and most 64 MiB, MaxFlightMessageBytes).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// MaxStreamBytes bounds the decoded bodies of one DoExchange stream
	// (default 2 GiB).
	MaxStreamBytes int64 `yaml:"max_stream_bytes"`
	// MaxFields bounds a schema's fields, nested ones included (default
	// 10,000).
	MaxFields int `yaml:"max_fields"`
	// MaxDepth bounds how deep a type nests (default 32).
	MaxDepth int `yaml:"max_depth"`
	// MaxBatchRows bounds the rows of a batch and the values of an array
	// (default 16,777,216).
	MaxBatchRows int64 `yaml:"max_batch_rows"`
}

// TLSConfig names a PEM certificate (chain) and its key, relative to the
// repository directory.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Unresolved is a ${VAR} whose variable is unset and has no default.
type Unresolved struct {
	Field string // e.g. kafka.brokers[0]
	Var   string
	Pos   Position
}

// EnsureDefaults fills unset fields with their documented defaults. A field
// left empty by an unset variable keeps no default: Require reports it.
func (c *Config) EnsureDefaults() {
	def := func(field string, s *string, v string) {
		if *s == "" && !c.hasUnresolved(field) {
			*s = v
		}
	}
	def("registry", &c.Registry, ".quiver/registry")
	def("offline.data_root", &c.Offline.DataRoot, "data")
	def("offline.duckdb.temp_directory", &c.Offline.DuckDB.TempDirectory, ".quiver/tmp")
	def("offline.compact.dir", &c.Offline.Compact.Dir, ".quiver/compact")
	def("online.type", &c.Online.Type, OnlineEmbedded)
	if c.Online.Type == OnlineEmbedded {
		def("online.path", &c.Online.Path, ".quiver/online")
	}
	def("serve.grpc", &c.Serve.GRPC, "127.0.0.1:6566")
	def("serve.http", &c.Serve.HTTP, "127.0.0.1:6567")
	def("serve.flight", &c.Serve.Flight, "127.0.0.1:8815")
	c.Kafka.Brokers = splitList(c.Kafka.Brokers)
	c.Online.Addrs = splitList(c.Online.Addrs)
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

var memoryLimitRE = regexp.MustCompile(`^(?i)\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)

// IsMemorySize reports whether s is a memory size DuckDB accepts, e.g. 4GB.
func IsMemorySize(s string) bool { return memoryLimitRE.MatchString(s) }

// Validate reports every problem in the configuration at once.
func (c *Config) Validate() ErrorList {
	var errs ErrorList
	bad := func(field, format string, args ...any) {
		errs = append(errs, &Error{Pos: c.At(field), Field: field, Msg: messagef(format, args...)})
	}
	switch {
	case c.Project == "" && !c.hasUnresolved("project"):
		bad("project", "is required: name the project, e.g. project: rides")
	case c.Project != "":
		if msg := checkName(c.Project); msg != "" {
			bad("project", "%s", msg)
		}
	}
	if m := c.Offline.DuckDB.MemoryLimit; m != "" && !memoryLimitRE.MatchString(m) {
		bad("offline.duckdb.memory_limit", "%q is not a memory size (e.g. 4GB, 512MB)", m)
	}
	if c.Offline.DuckDB.Threads < 0 {
		bad("offline.duckdb.threads", "must not be negative")
	}
	switch c.Offline.Engine {
	case "", EngineDuckDB:
		if c.Offline.Spark.Remote != "" {
			bad("offline.spark.remote", "is set, but the engine is duckdb (write engine: spark to use Spark)")
		}
	case EngineSpark:
		if c.Offline.Spark.Remote == "" && !c.hasUnresolved("offline.spark.remote") {
			bad("offline.spark", "engine spark needs remote: sc://host:15002")
		} else if r := c.Offline.Spark.Remote; r != "" && !strings.HasPrefix(r, "sc://") {
			bad("offline.spark.remote", "%q is not a Spark Connect address; give sc://host:port", r)
		}
	default:
		bad("offline.engine", "%q is not an engine; want duckdb or spark", c.Offline.Engine)
	}
	switch c.Offline.Spark.Out {
	case "", SparkOutCluster, SparkOutClient:
	default:
		bad("offline.spark.out", "%q is not a writer; want cluster or client", c.Offline.Spark.Out)
	}
	switch c.Online.Type {
	case OnlineEmbedded:
		if c.Online.Addr != "" || len(c.Online.Addrs) > 0 {
			bad("online.type", "is embedded, but addr/addrs are set (write type: redis to use Redis)")
		}
	case OnlineRedis:
		given := c.Online.Addr != "" || c.hasUnresolved("online.addr") || len(c.Online.Addrs) > 0 || c.hasUnresolved("online.addrs")
		switch {
		case !given:
			bad("online", "type redis needs addr (standalone) or addrs (Cluster)")
		case c.Online.Addr != "" && len(c.Online.Addrs) > 0:
			bad("online.addrs", "set either addr (standalone) or addrs (Cluster), not both")
		}
		if c.Online.Path != "" {
			bad("online.path", "is only used by the embedded store")
		}
		for _, a := range append(splitList([]string{c.Online.Addr}), c.Online.Addrs...) {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad("online.addr", "%q is not a host:port address", a)
			}
		}
		if c.Online.DB < 0 {
			bad("online.db", "must not be negative")
		}
	default:
		if !c.hasUnresolved("online.type") {
			bad("online.type", "%q is not an online store type (embedded or redis)", c.Online.Type)
		}
	}
	for _, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("kafka.brokers", "%q is not a host:port address", b)
		}
	}
	if t := c.Serve.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		bad("serve.tls", "give both cert_file and key_file")
	}
	if c.Serve.MaxEntities < 0 {
		bad("serve.max_entities", "must not be negative")
	}
	if c.Serve.MaxConnections < 0 {
		bad("serve.max_connections", "must not be negative")
	}
	if c.Serve.MaxConcurrentStreams < 0 {
		bad("serve.max_concurrent_streams", "must not be negative")
	}
	fl := c.Serve.FlightLimits
	for _, l := range []struct {
		key string
		v   int64
	}{{"max_metadata_bytes", int64(fl.MaxMetadataBytes)}, {"max_message_bytes", fl.MaxMessageBytes}, {"max_stream_bytes", fl.MaxStreamBytes},
		{"max_fields", int64(fl.MaxFields)}, {"max_depth", int64(fl.MaxDepth)}, {"max_batch_rows", fl.MaxBatchRows}} {
		if l.v < 0 {
			bad("serve.flight_limits."+l.key, "must not be negative")
		}
	}
	if fl.MaxMessageBytes > MaxFlightMessageBytes {
		bad("serve.flight_limits.max_message_bytes", "%d is over %d, the most one Flight message may carry", fl.MaxMessageBytes, MaxFlightMessageBytes)
	}
	if msg := checkRegistryLocation(c.Registry); msg != "" && !c.hasUnresolved("registry") {
		bad("registry", "%s", msg)
	}
	s3 := c.Storage.S3
	s3.EnsureDefaults()
	for _, p := range s3.Problems() {
		if !c.hasUnresolved("storage.s3." + p.Field) {
			bad("storage.s3."+p.Field, "%s", p.Msg)
		}
	}
	for _, a := range []struct{ field, addr string }{{"serve.grpc", c.Serve.GRPC}, {"serve.http", c.Serve.HTTP}, {"serve.flight", c.Serve.Flight}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad(a.field, "%q is not a host:port address", a.addr)
		}
	}
	return errs
}

// checkRegistryLocation says what is wrong with a registry location that
// names a scheme: only file:// and s3://bucket/prefix are registries.
func checkRegistryLocation(loc string) string {
	scheme, _, ok := strings.Cut(loc, "://")
	switch {
	case !ok || strings.EqualFold(scheme, "file"):
		return ""
	case strings.EqualFold(scheme, storage.SchemeS3):
		if _, err := storage.ParseURI(loc); err != nil {
			return err.Error()
		}
		return ""
	}
	return fmt.Sprintf("%q: %s:// registries are not supported; use a directory or s3://bucket/prefix", Clip(loc), Clip(scheme))
}

func (c *Config) hasUnresolved(prefix string) bool {
	for _, u := range c.Unresolved {
		if u.Field == prefix || strings.HasPrefix(u.Field, prefix+".") || strings.HasPrefix(u.Field, prefix+"[") {
			return true
		}
	}
	return false
}

// Require returns an error naming every unset environment variable used in
// the given sections (e.g. "online", "kafka.brokers"), or nil.
func (c *Config) Require(sections ...string) error {
	var errs ErrorList
	for _, u := range c.Unresolved {
		for _, s := range sections {
			if u.Field == s || strings.HasPrefix(u.Field, s+".") || strings.HasPrefix(u.Field, s+"[") {
				errs = append(errs, &Error{Pos: u.Pos, Field: u.Field,
					Msg: fmt.Sprintf("environment variable %s is not set (set it, or give a default: ${%s:-value})", u.Var, u.Var)})
				break
			}
		}
	}
	return errs.Err()
}

// Abs resolves a configured path against the repository directory.
func (c *Config) Abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// RegistryPath is the location of the registry: an absolute directory, or
// a URL as written.
func (c *Config) RegistryPath() string {
	if strings.Contains(c.Registry, "://") {
		return c.Registry
	}
	return c.Abs(c.Registry)
}

// OpenRegistry opens the registry that quiver.yaml names (OpenStore),
// after checking with Require that the registry setting, and for a
// registry in an object store the storage section, have their variables.
func (c *Config) OpenRegistry(ctx context.Context) (*Store, error) {
	loc := c.RegistryPath()
	sections := []string{"registry"}
	if strings.Contains(loc, "://") {
		sections = append(sections, "storage")
	}
	if err := c.Require(sections...); err != nil {
		return nil, err
	}
	return OpenStore(ctx, loc, c.StorageConfig())
}

// StorageConfig is the storage section with its defaults filled and
// ca_file resolved against the repository directory.
func (c *Config) StorageConfig() storage.Config {
	sc := c.Storage
	sc.S3.EnsureDefaults()
	sc.S3.CAFile = c.Abs(sc.S3.CAFile)
	return sc
}

// DataRoot is the absolute offline data root, or its s3:// URI as
// written.
func (c *Config) DataRoot() string {
	if strings.Contains(c.Offline.DataRoot, "://") {
		return c.Offline.DataRoot
	}
	return c.Abs(c.Offline.DataRoot)
}

var varRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// interpolate replaces ${VAR} and ${VAR:-default} in s using lookup; $$
// stands for a literal $. It returns the names of variables that are unset
// and have no default.
func interpolate(s string, lookup func(string) (string, bool)) (string, []string, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte('$')
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf("%q has an unterminated ${ (write ${VAR} or ${VAR:-default})", Clip(s))
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !envNameRE.MatchString(name) {
			return "", nil, fmt.Errorf("%q: ${%s} is not a variable reference (write ${VAR} or ${VAR:-default})", Clip(s), Clip(expr))
		}
		if v, ok := lookup(name); ok && v != "" {
			b.WriteString(v)
		} else if hasDef {
			b.WriteString(def)
		} else {
			missing = append(missing, name)
		}
		i += end
	}
	return b.String(), missing, nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
