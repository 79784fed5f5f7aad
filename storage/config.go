package storage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Config is the storage section of quiver.yaml:
//
//	storage:
//	  s3:
//	    endpoint: https://minio.internal:9000 # empty: AWS, from the region
//	    region: eu-west-1                     # empty: from the AWS chain, else us-east-1
//	    path_style: true                      # bucket in the path (MinIO, Ceph)
//	    ca_file: /etc/quiver/minio-ca.pem     # extra CA to trust, PEM
//	    insecure_skip_verify: false           # never in production
//	    max_retries: 5
//	    part_size: 16MiB
//	    concurrency: 8
//
// Credentials are never part of it: they come from the standard AWS chain
// (environment, shared config and credentials files with AWS_PROFILE, web
// identity tokens, container and instance roles).
type Config struct {
	S3 S3Options `yaml:"s3"`
}

// S3Options configure access to S3 and S3-compatible stores.
type S3Options struct {
	// Endpoint is the store's base URL, "https://host:port" (or
	// "http://" for a store on loopback or a private network). Empty:
	// AWS's endpoint for the region.
	Endpoint string `yaml:"endpoint"`
	// Region signs requests. Empty: the AWS chain's (AWS_REGION, the
	// profile), and "us-east-1" when that has none.
	Region string `yaml:"region"`
	// PathStyle puts the bucket in the URL's path instead of its host
	// name, as MinIO and Ceph usually need. Default false.
	PathStyle bool `yaml:"path_style"`
	// CAFile is a PEM file of certificate authorities trusted besides the
	// system's, for a store with a private CA. Default none.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify accepts any TLS certificate. For tests only;
	// default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// MaxRetries is how often a failed request (a 5xx, a throttle, a
	// dropped connection) is retried with jittered exponential backoff.
	// Default 5; 0 in YAML means the default, -1 means none.
	MaxRetries int `yaml:"max_retries"`
	// PartSize is the size of each part of a multipart upload and of each
	// ranged GET of a large read; bodies smaller than it are put in one
	// request. At least 5MiB (S3's smallest part). Default 16MiB.
	PartSize ByteSize `yaml:"part_size"`
	// Concurrency is how many parts one Put uploads, or one ReadAt
	// fetches, at once. Default 8.
	Concurrency int `yaml:"concurrency"`
	// ReadTimeout is the longest wait for a response to begin, and for
	// the next bytes of a body being read; a stalled read is retried
	// from where it stopped like a cut one. Default 60s.
	ReadTimeout Duration `yaml:"read_timeout"`

	// Credentials replace the AWS chain when set: for programs that
	// embed Quiver and for tests. Never read from YAML.
	Credentials aws.CredentialsProvider `yaml:"-"`
}

// Defaults of S3Options.
const (
	DefaultMaxRetries  = 5
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 8
	DefaultReadTimeout = Duration(60 * time.Second)
	// MinPartSize is S3's smallest part of a multipart upload but the last.
	MinPartSize = 5 << 20
	// maxParts is S3's largest number of parts in one upload.
	maxParts = 10000
)

// EnsureDefaults fills zero fields with their defaults.
func (o *S3Options) EnsureDefaults() {
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
}

// Validate reports every problem of o at once (after EnsureDefaults),
// each naming its key under storage.s3.
func (o *S3Options) Validate() error {
	var errs []error
	for _, p := range o.Problems() {
		errs = append(errs, fmt.Errorf("storage.s3.%s: %s", p.Field, p.Msg))
	}
	return errors.Join(errs...)
}

// Problem is one invalid option: its YAML key under storage.s3 and what is
// wrong.
type Problem struct {
	Field, Msg string
}

// Problems lists every invalid option of o (after EnsureDefaults), for a
// configuration loader that reports them with their positions.
func (o *S3Options) Problems() []Problem {
	var ps []Problem
	bad := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if o.Endpoint != "" && !strings.HasPrefix(o.Endpoint, "http://") && !strings.HasPrefix(o.Endpoint, "https://") {
		bad("endpoint", "%q is not a URL; give https://host:port", o.Endpoint)
	}
	if o.MaxRetries < -1 {
		bad("max_retries", "%d: give 0 or more (-1 for none)", o.MaxRetries)
	}
	if o.PartSize < MinPartSize {
		bad("part_size", "%s is below 5MiB, the smallest part S3 takes", o.PartSize)
	}
	if o.Concurrency < 1 {
		bad("concurrency", "%d: give 1 or more", o.Concurrency)
	}
	if o.ReadTimeout < 0 {
		bad("read_timeout", "%s: give a positive duration (60s)", o.ReadTimeout)
	}
	return ps
}

// retries is MaxRetries with -1 read as none.
func (o *S3Options) retries() int {
	if o.MaxRetries < 0 {
		return 0
	}
	return o.MaxRetries
}

// ByteSize is a size in bytes; in YAML an integer or a number with a unit
// (B, KiB, MiB, GiB, KB, MB, GB; "16MiB").
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// ParseByteSize parses "16MiB", "5000000", "1GB".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: give bytes, or a whole number with KiB, MiB or GiB (16MiB)", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalText reads an integer or a size with a unit, for YAML.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String renders b with the largest binary unit that divides it.
func (b ByteSize) String() string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.m == 0 {
			return strconv.FormatInt(int64(b)/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Duration is a time.Duration; in YAML a Go duration ("60s", "1m30s").
type Duration time.Duration

// UnmarshalText parses a Go duration, for YAML.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("duration %q: give a number and a unit, such as 60s or 2m", text)
	}
	*d = Duration(v)
	return nil
}

// String renders d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }
