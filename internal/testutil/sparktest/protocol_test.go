//go:build spark

package sparktest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/google/uuid"

	"github.com/apache/spark-connect-go/spark/client/channel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The client has no Interrupt, and its generated Spark Connect messages
// are in an internal package that no other module may import. Its
// generated code does register the messages with the protobuf runtime,
// though, so a test can build an InterruptRequest by name and send it on
// the client's own connection. The session and operation ids that the
// request needs are not exposed either: tapBuilder reads them off the
// client's ExecutePlan requests as they go out.

// tapBuilder is a channel.Builder that records the session and the last
// operation id of the ExecutePlan requests sent on its connection, and
// takes responses of up to maxRecv bytes (grpc-go's default, 4 MiB, when
// 0).
type tapBuilder struct {
	*channel.BaseBuilder
	maxRecv int

	mu          sync.Mutex
	conn        *grpc.ClientConn
	sessionID   string
	userID      string
	operationID string
}

var _ channel.Builder = (*tapBuilder)(nil)

func newTapBuilder(remote string) (*tapBuilder, error) {
	base, err := channel.NewBuilder(remote)
	if err != nil {
		return nil, err
	}
	return &tapBuilder{BaseBuilder: base}, nil
}

func (b *tapBuilder) Build(context.Context) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStreamInterceptor(b.intercept),
	}
	if b.maxRecv > 0 {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(b.maxRecv)))
	}
	conn, err := grpc.NewClient(fmt.Sprintf("%s:%d", b.Host(), b.Port()), opts...)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.conn = conn
	b.mu.Unlock()
	return conn, nil
}

func (b *tapBuilder) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption,
) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &tapStream{ClientStream: cs, b: b}, nil
}

// lastOperation is the operation id of the last ExecutePlan sent.
func (b *tapBuilder) lastOperation() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.operationID
}

type tapStream struct {
	grpc.ClientStream
	b *tapBuilder
}

func (s *tapStream) SendMsg(m any) error {
	if pm, ok := m.(proto.Message); ok {
		r := pm.ProtoReflect()
		if r.Descriptor().FullName() == "spark.connect.ExecutePlanRequest" {
			f := r.Descriptor().Fields()
			uc := r.Get(f.ByName("user_context")).Message()
			s.b.mu.Lock()
			s.b.sessionID = r.Get(f.ByName("session_id")).String()
			s.b.userID = uc.Get(uc.Descriptor().Fields().ByName("user_id")).String()
			s.b.operationID = r.Get(f.ByName("operation_id")).String()
			s.b.mu.Unlock()
		}
	}
	return s.ClientStream.SendMsg(m)
}

// interrupt sends an InterruptRequest for one operation, or for all of the
// session's operations when operationID is "", and returns the ids of the
// operations the server interrupted.
func (b *tapBuilder) interrupt(ctx context.Context, operationID string) ([]string, error) {
	b.mu.Lock()
	conn, sessionID, userID := b.conn, b.sessionID, b.userID
	b.mu.Unlock()
	reqType, err := protoregistry.GlobalTypes.FindMessageByName("spark.connect.InterruptRequest")
	if err != nil {
		return nil, err
	}
	respType, err := protoregistry.GlobalTypes.FindMessageByName("spark.connect.InterruptResponse")
	if err != nil {
		return nil, err
	}
	req := reqType.New()
	f := req.Descriptor().Fields()
	req.Set(f.ByName("session_id"), protoreflect.ValueOfString(sessionID))
	uc := req.Mutable(f.ByName("user_context")).Message()
	uc.Set(uc.Descriptor().Fields().ByName("user_id"), protoreflect.ValueOfString(userID))
	kind := f.ByName("interrupt_type").Enum().Values()
	if operationID == "" {
		req.Set(f.ByName("interrupt_type"), protoreflect.ValueOfEnum(kind.ByName("INTERRUPT_TYPE_ALL").Number()))
	} else {
		req.Set(f.ByName("interrupt_type"), protoreflect.ValueOfEnum(kind.ByName("INTERRUPT_TYPE_OPERATION_ID").Number()))
		req.Set(f.ByName("operation_id"), protoreflect.ValueOfString(operationID))
	}
	resp := respType.New()
	if err := conn.Invoke(ctx, "/spark.connect.SparkConnectService/Interrupt", req.Interface(), resp.Interface()); err != nil {
		return nil, err
	}
	var ids []string
	list := resp.Get(resp.Descriptor().Fields().ByName("interrupted_ids")).List()
	for i := range list.Len() {
		ids = append(ids, list.Get(i).String())
	}
	return ids, nil
}

// newMessage is an empty Spark Connect message, found by its full name in
// the types that the client's generated code registers.
func newMessage(name protoreflect.FullName) (protoreflect.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return nil, fmt.Errorf("spark connect message %s: %w", name, err)
	}
	return mt.New(), nil
}

// setPath sets a string field at the end of a path of message fields,
// creating the messages on the way: setPath(req, "plan.root.sql.query", q).
func setPath(m protoreflect.Message, path string, v string) {
	names := strings.Split(path, ".")
	for _, n := range names[:len(names)-1] {
		m = m.Mutable(m.Descriptor().Fields().ByName(protoreflect.Name(n))).Message()
	}
	m.Set(m.Descriptor().Fields().ByName(protoreflect.Name(names[len(names)-1])), protoreflect.ValueOfString(v))
}

// streamSQL runs query through ExecutePlan on conn in the session
// sessionID and hands each Arrow record batch to fn as it arrives, without
// collecting the result first (which the client's ToArrow does).
func streamSQL(ctx context.Context, conn *grpc.ClientConn, sessionID, query string, fn func(arrow.RecordBatch) error) error {
	req, err := newMessage("spark.connect.ExecutePlanRequest")
	if err != nil {
		return err
	}
	setPath(req, "session_id", sessionID)
	setPath(req, "user_context.user_id", "quiver")
	setPath(req, "operation_id", uuid.NewString())
	setPath(req, "plan.root.sql.query", query)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/spark.connect.SparkConnectService/ExecutePlan")
	if err != nil {
		return err
	}
	if err := cs.SendMsg(req.Interface()); err != nil {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	// Without reattach options the execution is not reattachable: the
	// server sends no result_complete, and the end of the stream is the
	// end of the result.
	for {
		resp, err := newMessage("spark.connect.ExecutePlanResponse")
		if err != nil {
			return err
		}
		if err := cs.RecvMsg(resp.Interface()); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		oneof := resp.Descriptor().Oneofs().ByName("response_type")
		f := resp.WhichOneof(oneof)
		if f == nil {
			continue
		}
		if f.Name() == "arrow_batch" {
			batch := resp.Get(f).Message()
			data := batch.Get(batch.Descriptor().Fields().ByName("data")).Bytes()
			r, err := ipc.NewReader(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("read arrow batch: %w", err)
			}
			for r.Next() {
				if err := fn(r.RecordBatch()); err != nil {
					r.Release()
					return err
				}
			}
			err = r.Err()
			r.Release()
			if err != nil {
				return fmt.Errorf("read arrow batch: %w", err)
			}
		}
	}
	return nil
}
