package storage

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// S3 is a Bucket in an S3 or S3-compatible store.
type S3 struct {
	client *s3.Client
	bucket string
	opts   S3Options
}

var _ Bucket = (*S3)(nil)

// NewS3 returns the bucket named bucket of the store opts describe, with
// credentials from opts.Credentials or else the standard AWS chain. It
// makes no request: a missing bucket or a wrong credential shows in the
// first operation.
func NewS3(ctx context.Context, bucket string, opts S3Options) (*S3, error) {
	uri := "s3://" + bucket
	if err := checkBucketName(bucket); err != nil {
		return nil, &Error{Op: "open", URI: uri, Err: fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, &Error{Op: "open", URI: uri, Err: err}
	}
	httpClient, err := httpClient(opts)
	if err != nil {
		return nil, &Error{Op: "open", URI: uri, Err: err}
	}
	loads := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.retries() + 1
				o.MaxBackoff = 5 * time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
		// The checksums S3 asks for only: S3-compatible stores differ in
		// the trailing checksums they take.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opts.Region != "" {
		loads = append(loads, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		loads = append(loads, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, &Error{Op: "open", URI: uri, Err: fmt.Errorf("load AWS configuration: %w", err)}
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = opts.PathStyle
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	return &S3{client: client, bucket: bucket, opts: opts}, nil
}

// httpClient builds the transport: the SDK's defaults plus the CA file
// and the verification switch of opts.
func httpClient(opts S3Options) (*awshttp.BuildableClient, error) {
	var pool *x509.CertPool
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("storage.s3.ca_file: %w", err)
		}
		pool, err = x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("storage.s3.ca_file %s: no PEM certificate in it", opts.CAFile)
		}
	}
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = time.Duration(opts.ReadTimeout)
		if pool == nil && !opts.InsecureSkipVerify {
			return
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if pool != nil {
			tr.TLSClientConfig.RootCAs = pool
		}
		tr.TLSClientConfig.InsecureSkipVerify = opts.InsecureSkipVerify //nolint:gosec // asked for in quiver.yaml, for tests
	}), nil
}

// URI returns "s3://bucket/key".
func (s *S3) URI(key string) string { return "s3://" + s.bucket + "/" + key }

// Bucket is the bucket's name.
func (s *S3) Bucket() string { return s.bucket }

func (s *S3) check(op, key string) error {
	switch {
	case key == "":
		return &Error{Op: op, URI: s.URI(key), Err: fmt.Errorf("%w: an empty key", ErrInvalid)}
	case len(key) > MaxKeyLen:
		return &Error{Op: op, URI: s.URI(key), Err: fmt.Errorf("%w: the key is longer than %d bytes", ErrInvalid, MaxKeyLen)}
	}
	return nil
}

// fail wraps an SDK error in an *Error, mapping S3's error codes to the
// sentinel errors.
func (s *S3) fail(ctx context.Context, op, key string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey":
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		case "NotFound":
			// HEAD has no body, so a missing bucket reads as a missing key:
			// ask about the bucket.
			if s.bucketMissing(ctx) {
				err = fmt.Errorf("%w: %w", ErrBucketNotFound, err)
			} else {
				err = fmt.Errorf("%w: %w", ErrNotFound, err)
			}
		case "NoSuchBucket":
			err = fmt.Errorf("%w: %w", ErrBucketNotFound, err)
		}
	}
	return &Error{Op: op, URI: s.URI(key), Err: err}
}

func (s *S3) bucketMissing(ctx context.Context) bool {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchBucket"
	}
	return false
}

// Stat sends a HEAD request.
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := s.check("stat", key); err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return ObjectInfo{}, s.fail(ctx, "stat", key, err)
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), ETag: unquote(aws.ToString(out.ETag))}, nil
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

// Open stats the object; reads are ranged GETs pinned to its ETag.
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = "open"
		}
		return nil, err
	}
	return &s3Object{s: s, ctx: ctx, info: info}, nil
}

// List pages through ListObjectsV2.
func (s *S3) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified), ETag: unquote(aws.ToString(o.ETag))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Put sends one PUT for a body shorter than the part size and a multipart
// upload otherwise, aborted on any failure.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (ObjectInfo, error) {
	if err := s.check("put", key); err != nil {
		return ObjectInfo{}, err
	}
	// The first part's worth decides: a shorter body is one PUT. The
	// buffer grows with the body, so a small object costs little memory.
	var first bytes.Buffer
	n, err := first.ReadFrom(io.LimitReader(r, int64(s.opts.PartSize)))
	switch {
	case err != nil:
		return ObjectInfo{}, &Error{Op: "put", URI: s.URI(key), Err: fmt.Errorf("read the body: %w", err)}
	case n < int64(s.opts.PartSize):
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(first.Bytes()), ContentLength: aws.Int64(n),
		})
		if err != nil {
			return ObjectInfo{}, s.fail(ctx, "put", key, err)
		}
	default:
		if err := s.multipart(ctx, key, first.Bytes(), r); err != nil {
			return ObjectInfo{}, err
		}
	}
	info, err := s.Stat(ctx, key)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = "put"
		}
	}
	return info, err
}

// multipart uploads first and the rest of r as parts, at most Concurrency
// at once, each part's buffer reused once it is sent; it completes the
// upload only when every part is stored and aborts it otherwise.
func (s *S3) multipart(ctx context.Context, key string, first []byte, r io.Reader) (err error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return s.fail(ctx, "put", key, err)
	}
	id := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: id}); aerr != nil {
			err = errors.Join(err, s.fail(actx, "abort upload", key, aerr))
		}
	}()

	var (
		mu    sync.Mutex
		parts []types.CompletedPart
	)
	partSize := int(s.opts.PartSize) // every buffer's capacity is at least this
	free := make(chan []byte, s.opts.Concurrency)
	allocated := 1
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Concurrency)
	upload := func(part int32, body []byte) {
		g.Go(func() error {
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket: &s.bucket, Key: &key, UploadId: id, PartNumber: aws.Int32(part),
				Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
			})
			if err != nil {
				return s.fail(gctx, "put part "+strconv.Itoa(int(part))+" of", key, err)
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(part)})
			mu.Unlock()
			free <- body[:partSize]
			return nil
		})
	}
	buf, n := first[:partSize], partSize
	for num := int32(1); ; num++ {
		if gctx.Err() != nil {
			// A part failed (or ctx ended): read no more of the body.
			if err := g.Wait(); err != nil {
				return err
			}
			return &Error{Op: "put", URI: s.URI(key), Err: context.Cause(gctx)}
		}
		if num > maxParts {
			return errors.Join(g.Wait(), &Error{Op: "put", URI: s.URI(key), Err: fmt.Errorf("the object is larger than %d parts of %s (raise storage.s3.part_size)", maxParts, s.opts.PartSize)})
		}
		upload(num, buf[:n])
		if n < len(buf) {
			break // a short part is the last
		}
		// The next buffer: a new one while fewer than Concurrency exist,
		// else the first one an upload gives back.
		select {
		case buf = <-free:
		default:
			if allocated < s.opts.Concurrency {
				buf, allocated = make([]byte, s.opts.PartSize), allocated+1
			} else {
				select {
				case buf = <-free:
				case <-gctx.Done():
					if err := g.Wait(); err != nil {
						return err
					}
					return &Error{Op: "put", URI: s.URI(key), Err: context.Cause(gctx)}
				}
			}
		}
		var rerr error
		n, rerr = io.ReadFull(r, buf)
		if errors.Is(rerr, io.EOF) {
			break // the body ended on a part boundary
		}
		if rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return errors.Join(g.Wait(), &Error{Op: "put", URI: s.URI(key), Err: fmt.Errorf("read the body: %w", rerr)})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: id, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return s.fail(ctx, "complete upload", key, err)
	}
	return nil
}

// PutIfAbsent sends one PUT with "If-None-Match: *". S3 answers 412 when
// the key is taken, and 409 when another conditional write of the key is
// in flight, which is retried.
func (s *S3) PutIfAbsent(ctx context.Context, key string, data []byte) (ObjectInfo, error) {
	if err := s.check("create", key); err != nil {
		return ObjectInfo{}, err
	}
	for attempt := 0; ; attempt++ {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
			IfNoneMatch: aws.String("*"),
		})
		var ae smithy.APIError
		if errors.As(err, &ae) {
			switch ae.ErrorCode() {
			case "PreconditionFailed":
				return ObjectInfo{}, &Error{Op: "create", URI: s.URI(key), Err: ErrExist}
			case "ConditionalRequestConflict":
				if attempt < s.opts.retries() {
					if serr := sleep(ctx, attempt); serr != nil {
						return ObjectInfo{}, &Error{Op: "create", URI: s.URI(key), Err: serr}
					}
					continue
				}
			}
		}
		if err != nil {
			return ObjectInfo{}, s.fail(ctx, "create", key, err)
		}
		break
	}
	info, err := s.Stat(ctx, key)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = "create"
		}
	}
	return info, err
}

// Delete sends DELETE; S3 answers a missing key with success.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := s.check("delete", key); err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// sleep waits out the jittered exponential backoff of a retry.
func sleep(ctx context.Context, attempt int) error {
	d := min(50*time.Millisecond<<min(attempt, 6), 2*time.Second)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// readAhead is how much a Read fetches at once.
const readAhead = 1 << 20

// s3Object reads one version of an object with ranged GETs.
type s3Object struct {
	s    *S3
	ctx  context.Context
	info ObjectInfo

	mu     sync.Mutex
	off    int64  // Read and Seek's offset
	buf    []byte // read-ahead of Read, from bufOff
	bufOff int64
}

func (o *s3Object) Info() ObjectInfo { return o.info }

func (o *s3Object) Close() error { return nil }

// ReadAt fills p from off: one ranged GET for up to a part, parallel GETs
// of a part each above that. It returns len(p) bytes, or fewer with
// io.EOF at the object's end, or an error.
func (o *s3Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &Error{Op: "read", URI: o.s.URI(o.info.Key), Err: fmt.Errorf("negative offset %d", off)}
	}
	if off >= o.info.Size {
		return 0, io.EOF
	}
	want, atEnd := p, false
	if rest := o.info.Size - off; int64(len(p)) >= rest {
		want, atEnd = p[:rest], true
	}
	chunk := int(o.s.opts.PartSize)
	if len(want) <= chunk {
		if err := o.fetch(o.ctx, want, off); err != nil {
			return 0, err
		}
	} else {
		g, gctx := errgroup.WithContext(o.ctx)
		g.SetLimit(o.s.opts.Concurrency)
		for start := 0; start < len(want); start += chunk {
			end := min(start+chunk, len(want))
			g.Go(func() error { return o.fetch(gctx, want[start:end], off+int64(start)) })
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
	}
	if atEnd {
		return len(want), io.EOF
	}
	return len(want), nil
}

// errStalled ends a GET whose body stopped arriving.
var errStalled = errors.New("no byte arrived within storage.s3.read_timeout")

// fetch fills buf with the bytes at off, resuming from where a cut or
// stalled connection stopped, up to MaxRetries times.
func (o *s3Object) fetch(ctx context.Context, buf []byte, off int64) error {
	key := o.info.Key
	idle := time.Duration(o.s.opts.ReadTimeout)
	got := 0
	for attempt := 0; ; attempt++ {
		n, retry, err := o.get(ctx, buf[got:], off+int64(got), idle)
		got += n
		if err == nil {
			return nil
		}
		if !retry || ctx.Err() != nil || attempt >= o.s.opts.retries() {
			if retry {
				err = &Error{Op: "read", URI: o.s.URI(key), Err: fmt.Errorf("bytes %d-%d: the connection ended after %d of %d bytes (%d attempts): %w",
					off, off+int64(len(buf))-1, got, len(buf), attempt+1, err)}
			}
			return err
		}
		if err := sleep(ctx, attempt); err != nil {
			return &Error{Op: "read", URI: o.s.URI(key), Err: err}
		}
	}
}

// get sends one ranged GET for buf at off and reads its body, cancelling
// it when no byte arrives for idle. retry tells whether the error is a
// cut or stalled connection that a new GET may resume.
func (o *s3Object) get(ctx context.Context, buf []byte, off int64, idle time.Duration) (n int, retry bool, err error) {
	key := o.info.Key
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(idle, func() { cancel(errStalled) })
	defer timer.Stop()

	rng := "bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+int64(len(buf))-1, 10)
	in := &s3.GetObjectInput{Bucket: &o.s.bucket, Key: &key, Range: &rng}
	if o.info.ETag != "" {
		in.IfMatch = aws.String(`"` + o.info.ETag + `"`)
	}
	out, err := o.s.client.GetObject(rctx, in)
	if err != nil {
		var ae smithy.APIError
		switch {
		case errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed":
			return 0, false, &Error{Op: "read", URI: o.s.URI(key), Err: fmt.Errorf("the object was replaced while it was read (ETag %s): %w", o.info.ETag, err)}
		case ctx.Err() == nil && errors.Is(context.Cause(rctx), errStalled):
			return 0, true, errStalled
		}
		return 0, false, o.s.fail(ctx, "read", key, err)
	}
	defer func() {
		// Once the bytes asked for are in, closing the body cannot
		// change them: only a failed read reports a close error too.
		if cerr := out.Body.Close(); cerr != nil && err != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if cr := aws.ToString(out.ContentRange); !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(off, 10)+"-") {
		return 0, false, &Error{Op: "read", URI: o.s.URI(key), Err: fmt.Errorf("asked for %s, the store answered with Content-Range %q", rng, cr)}
	}
	for n < len(buf) {
		timer.Reset(idle)
		k, rerr := out.Body.Read(buf[n:])
		n += k
		if rerr != nil {
			if n == len(buf) && errors.Is(rerr, io.EOF) {
				break
			}
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			if errors.Is(context.Cause(rctx), errStalled) {
				rerr = errStalled
			}
			return n, true, rerr
		}
	}
	return n, false, nil
}

// Read reads from the current offset through a read-ahead buffer.
func (o *s3Object) Read(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if o.off >= o.info.Size {
		return 0, io.EOF
	}
	if len(p) >= readAhead {
		n, err := o.ReadAt(p, o.off)
		o.off += int64(n)
		if errors.Is(err, io.EOF) && n > 0 {
			err = nil
		}
		return n, err
	}
	if o.off < o.bufOff || o.off >= o.bufOff+int64(len(o.buf)) {
		if cap(o.buf) < readAhead {
			o.buf = make([]byte, readAhead)
		}
		o.buf = o.buf[:min(int64(readAhead), o.info.Size-o.off)]
		n, err := o.ReadAt(o.buf, o.off)
		if err != nil && !errors.Is(err, io.EOF) {
			o.buf = o.buf[:0]
			return 0, err
		}
		o.buf, o.bufOff = o.buf[:n], o.off
	}
	n := copy(p, o.buf[o.off-o.bufOff:])
	o.off += int64(n)
	return n, nil
}

// Seek sets the offset of Read.
func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.info.Size + offset
	default:
		return 0, &Error{Op: "seek", URI: o.s.URI(o.info.Key), Err: fmt.Errorf("bad whence %d", whence)}
	}
	if abs < 0 {
		return 0, &Error{Op: "seek", URI: o.s.URI(o.info.Key), Err: fmt.Errorf("negative position %d", abs)}
	}
	o.off = abs
	return abs, nil
}
