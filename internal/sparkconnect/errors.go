package sparkconnect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is an error the Spark Connect server reported, or a failure to
// reach it.
type Error struct {
	// Op is what the client was doing ("query", "exec", "create view t").
	Op string
	// Class is Spark's error class, as UNRESOLVED_COLUMN.WITH_SUGGESTION
	// or TABLE_OR_VIEW_NOT_FOUND; "" when the server gave none.
	Class string
	// SQLState is the SQLSTATE, as 42703; "" when none.
	SQLState string
	// Message is the server's message without the class, the SQLSTATE,
	// the query plan or the stack: fit to show a user.
	Message string
	// Parameters are the error class's parameters (objectName, proposal,
	// ...), when the server sent them.
	Parameters map[string]string
	// Exception is the JVM exception's class, as
	// org.apache.spark.sql.AnalysisException.
	Exception string
	// Code is the gRPC status code.
	Code codes.Code

	classes []string // the exception's class and its superclasses
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("spark connect ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Message)
	switch {
	case e.Class != "" && e.SQLState != "":
		fmt.Fprintf(&b, " [%s, SQLSTATE %s]", e.Class, e.SQLState)
	case e.Class != "":
		fmt.Fprintf(&b, " [%s]", e.Class)
	}
	return b.String()
}

// Analysis reports whether the statement itself is at fault: it does not
// parse, or names a column, table or function that does not exist, or
// mixes types (SQLSTATE class 42, or a ParseException or
// AnalysisException). Such an error is the user's to fix; anything else
// is a failure of the server, the cluster or the data.
func (e *Error) Analysis() bool {
	if strings.HasPrefix(e.SQLState, "42") {
		return true
	}
	for _, c := range append([]string{e.Exception}, e.classes...) {
		if strings.HasSuffix(c, ".AnalysisException") || strings.HasSuffix(c, ".ParseException") {
			return true
		}
	}
	return false
}

// Canceled reports whether the operation was interrupted or its context
// ended.
func (e *Error) Canceled() bool {
	return e.Code == codes.Canceled || e.Code == codes.DeadlineExceeded || e.Class == "OPERATION_CANCELED"
}

// IsAnalysis reports whether err is a Spark Connect error that is the
// statement's fault; see [Error.Analysis].
func IsAnalysis(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Analysis()
}

// newError turns a gRPC error into an *Error. A context's own end is
// kept as the context's error, wrapped, so errors.Is(err,
// context.Canceled) holds.
func newError(op string, err error, ctx context.Context) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if ctx != nil && ctx.Err() != nil {
		return fmt.Errorf("spark connect %s: %w", op, context.Cause(ctx))
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("spark connect %s: %w", op, err)
	}
	e = &Error{Op: op, Code: st.Code()}
	msg := st.Message()
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok {
			continue
		}
		e.Exception = info.GetReason()
		md := info.GetMetadata()
		e.Class = md["errorClass"]
		e.SQLState = md["sqlState"]
		if c := md["classes"]; c != "" {
			_ = json.Unmarshal([]byte(c), &e.classes)
		}
		if p := md["messageParameters"]; p != "" {
			_ = json.Unmarshal([]byte(p), &e.Parameters)
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		msg = "server unavailable: " + msg
	case codes.ResourceExhausted:
		msg = "message too large: " + msg
	}
	e.Message = cleanMessage(msg, e.Class, e.SQLState)
	if e.Message == "" {
		e.Message = st.Code().String()
	}
	return e
}

// cleanMessage strips what Spark puts around a message: a leading
// "[CLASS] ", the " SQLSTATE: xxxxx" in it, and the plan after ";\n" or
// the query after "== SQL ==".
func cleanMessage(msg, class, sqlState string) string {
	msg = strings.TrimSpace(msg)
	for _, sep := range []string{";\n", "\n== SQL", "\n\n"} {
		if before, _, ok := strings.Cut(msg, sep); ok {
			msg = before
		}
	}
	if class != "" {
		msg = strings.TrimPrefix(msg, "["+class+"] ")
	} else if strings.HasPrefix(msg, "[") {
		if i := strings.Index(msg, "] "); i > 0 && !strings.ContainsAny(msg[1:i], " \n") {
			msg = msg[i+2:]
		}
	}
	const tag = " SQLSTATE: "
	if i := strings.LastIndex(msg, tag); i >= 0 {
		rest := msg[i+len(tag):]
		end := strings.IndexAny(rest, " ;\n")
		if end < 0 {
			end = len(rest)
		}
		if sqlState == "" || rest[:end] == sqlState {
			msg = msg[:i] + strings.TrimPrefix(rest[end:], ";")
		}
	}
	return strings.TrimSpace(msg)
}
