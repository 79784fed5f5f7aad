package server

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
)

// The one error mapping of every surface: a core error becomes a gRPC
// code (errorCode), which gRPC and Flight answer with as it is and HTTP
// turns into a status (httpCode). A surface never maps errors on its own.

// errorCode is the gRPC code of a core error. An error that already
// carries a gRPC status keeps its code.
func errorCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	switch {
	case errors.Is(err, online.ErrInvalidRequest), errors.Is(err, offline.ErrInvalidRequest), errors.Is(err, stream.ErrInvalidPush):
		return codes.InvalidArgument
	case errors.Is(err, ipcguard.ErrLimit):
		return codes.ResourceExhausted
	case errors.Is(err, ipcguard.ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, errNoPusher):
		return codes.Unimplemented
	case errors.Is(err, online.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Internal
}

// grpcError is err as a gRPC status error (gRPC and Flight answers).
func grpcError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(errorCode(err), clientMessage(err))
}

// clientMessage is what a client is told of a core error: all of it,
// but for an unreachable store, whose cause names internal addresses.
// The server log has that cause: the health poller logs every change of
// the store's state with it.
func clientMessage(err error) string {
	if errors.Is(err, online.ErrUnavailable) {
		return online.ErrUnavailable.Error() + " (the server log has the cause)"
	}
	return err.Error()
}

// statusClientClosedRequest is the status of a request whose client went
// away before the answer (nginx's 499; no standard status says it).
const statusClientClosedRequest = 499

// httpCode is the HTTP status of a gRPC code.
func httpCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return statusClientClosedRequest
	}
	return http.StatusInternalServerError
}

// httpStatus is the HTTP status of a core error.
func httpStatus(err error) int { return httpCode(errorCode(err)) }
