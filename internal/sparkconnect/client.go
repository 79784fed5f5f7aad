package sparkconnect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quiverdata/quiver/internal/sparkconnect/pb"
)

const (
	// DefaultMaxRecvBytes is the largest response message a session
	// takes: Spark sends each Arrow batch (up to 10,000 rows) as one
	// message, whatever its size, so grpc-go's 4 MiB is far too little
	// for wide rows.
	DefaultMaxRecvBytes = 256 << 20
	// DefaultChunkBytes is the size of the Arrow IPC chunks CreateView
	// uploads, well below the server's default
	// spark.connect.grpc.maxInboundMessageSize of 128 MiB.
	DefaultChunkBytes = 32 << 20
	// interruptTimeout bounds the InterruptRequest sent for a cancelled
	// query.
	interruptTimeout = 10 * time.Second
	defaultUserID    = "quiver"
	defaultUserAgent = "quiver-go"
)

// Options tunes [Dial]; the zero value is fine.
type Options struct {
	// MaxRecvBytes is the largest response message accepted
	// (DefaultMaxRecvBytes when 0).
	MaxRecvBytes int
	// ChunkBytes is the size of CreateView's upload chunks
	// (DefaultChunkBytes when 0).
	ChunkBytes int
	// TLS is the TLS configuration when the remote asks for TLS (the
	// system's roots when nil).
	TLS *tls.Config
	// DialOptions are added to the gRPC dial options.
	DialOptions []grpc.DialOption
}

// Session is one Spark session on a Spark Connect server. Its methods may
// be called from several goroutines.
type Session struct {
	remote     Remote
	conn       *grpc.ClientConn
	client     pb.SparkConnectServiceClient
	id         string
	user       *pb.UserContext
	agent      string
	chunkBytes int
}

// Dial connects to the Spark Connect server at remote (see
// [ParseRemote]) and opens a session with a new UUID, unless the remote
// names one. It makes one round trip (reading a setting), so that an
// unreachable server or a refused token is an error here.
func Dial(ctx context.Context, remote string, opts Options) (*Session, error) {
	r, err := ParseRemote(remote)
	if err != nil {
		return nil, err
	}
	maxRecv := opts.MaxRecvBytes
	if maxRecv <= 0 {
		maxRecv = DefaultMaxRecvBytes
	}
	dial := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecv))}
	if r.UseSSL {
		cfg := opts.TLS
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if r.Token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(r.Token)))
	}
	if len(r.Headers) > 0 {
		dial = append(dial, grpc.WithPerRPCCredentials(headers(r.Headers)))
	}
	dial = append(dial, opts.DialOptions...)
	conn, err := grpc.NewClient(r.Addr(), dial...)
	if err != nil {
		return nil, fmt.Errorf("spark connect dial %s: %w", r.Addr(), err)
	}
	s := &Session{
		remote:     r,
		conn:       conn,
		client:     pb.NewSparkConnectServiceClient(conn),
		id:         r.SessionID,
		user:       &pb.UserContext{UserId: r.UserID, UserName: r.UserID},
		agent:      r.UserAgent,
		chunkBytes: opts.ChunkBytes,
	}
	if s.id == "" {
		s.id = uuid.NewString()
	}
	if s.user.UserId == "" {
		s.user.UserId, s.user.UserName = defaultUserID, defaultUserID
	}
	if s.agent == "" {
		s.agent = defaultUserAgent
	}
	if s.chunkBytes <= 0 {
		s.chunkBytes = DefaultChunkBytes
	}
	if _, err := s.Conf(ctx, "spark.sql.session.timeZone"); err != nil {
		_ = conn.Close()
		var e *Error
		if errors.As(err, &e) {
			e.Op = "dial " + r.Addr()
			return nil, e
		}
		return nil, fmt.Errorf("spark connect dial %s: %w", r.Addr(), err)
	}
	return s, nil
}

// ID is the session's UUID.
func (s *Session) ID() string { return s.id }

// Remote is the parsed address the session was dialled with.
func (s *Session) Remote() Remote { return s.remote }

// SetConf sets Spark settings for the session.
func (s *Session) SetConf(ctx context.Context, conf map[string]string) error {
	if len(conf) == 0 {
		return nil
	}
	var pairs []*pb.KeyValue
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		pairs = append(pairs, &pb.KeyValue{Key: k, Value: new(conf[k])})
	}
	_, err := s.config(ctx, "set conf", &pb.ConfigRequest_Operation{
		OpType: &pb.ConfigRequest_Operation_Set{Set: &pb.ConfigRequest_Set{Pairs: pairs}},
	})
	return err
}

// Conf reads a Spark setting of the session; unknown keys are an error.
func (s *Session) Conf(ctx context.Context, key string) (string, error) {
	resp, err := s.config(ctx, "get conf "+key, &pb.ConfigRequest_Operation{
		OpType: &pb.ConfigRequest_Operation_Get{Get: &pb.ConfigRequest_Get{Keys: []string{key}}},
	})
	if err != nil {
		return "", err
	}
	for _, p := range resp.GetPairs() {
		if p.GetKey() == key {
			return p.GetValue(), nil
		}
	}
	return "", fmt.Errorf("spark connect get conf %s: not in the server's answer", key)
}

func (s *Session) config(ctx context.Context, op string, o *pb.ConfigRequest_Operation) (*pb.ConfigResponse, error) {
	resp, err := s.client.Config(ctx, &pb.ConfigRequest{
		SessionId:   s.id,
		UserContext: s.user,
		Operation:   o,
		ClientType:  new(s.agent),
	})
	return resp, newError(op, err, ctx)
}

// Interrupt stops every running operation of the session and returns the
// ids of those it stopped.
func (s *Session) Interrupt(ctx context.Context) ([]string, error) {
	resp, err := s.client.Interrupt(ctx, &pb.InterruptRequest{
		SessionId:     s.id,
		UserContext:   s.user,
		ClientType:    new(s.agent),
		InterruptType: pb.InterruptRequest_INTERRUPT_TYPE_ALL,
	})
	if err != nil {
		return nil, newError("interrupt", err, ctx)
	}
	return resp.GetInterruptedIds(), nil
}

// interruptOperation stops one operation; it runs after the caller's
// context has ended, so it has its own.
func (s *Session) interruptOperation(opID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), interruptTimeout)
	defer cancel()
	_, err := s.client.Interrupt(ctx, &pb.InterruptRequest{
		SessionId:     s.id,
		UserContext:   s.user,
		ClientType:    new(s.agent),
		InterruptType: pb.InterruptRequest_INTERRUPT_TYPE_OPERATION_ID,
		Interrupt:     &pb.InterruptRequest_OperationId{OperationId: opID},
	})
	return newError("interrupt "+opID, err, ctx)
}

// Close releases the session on the server (its temporary views and
// settings go with it) and closes the connection.
func (s *Session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), interruptTimeout)
	defer cancel()
	_, err := s.client.ReleaseSession(ctx, &pb.ReleaseSessionRequest{
		SessionId:   s.id,
		UserContext: s.user,
		ClientType:  new(s.agent),
	})
	return errors.Join(newError("release session", err, ctx), s.conn.Close())
}

// bearer sends "authorization: Bearer <token>" with every call, over TLS
// only.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// headers sends the remote's x- settings with every call.
type headers map[string]string

func (h headers) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return h, nil
}

func (headers) RequireTransportSecurity() bool { return false }
