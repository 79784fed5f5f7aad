package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/internal/objcache"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/wire"
)

// The one error mapping of every surface: a core error becomes a gRPC
// code (errorCode), which gRPC and Flight answer with as it is and HTTP
// turns into a status (wire.HTTPStatus). A surface never maps errors on its own.

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
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrBucketNotFound):
		return codes.NotFound
	case errors.Is(err, objcache.ErrFull):
		return codes.ResourceExhausted
	case errors.Is(err, objcache.ErrChanged), storeStatus(err) == http.StatusPreconditionFailed:
		// The object was replaced while it was read (a read pinned to its
		// ETag): reading again reads the new one.
		return codes.Aborted
	case storeStatus(err) == http.StatusForbidden:
		return codes.PermissionDenied
	case errors.As(err, new(*storage.Error)):
		// The object store failed (after its retries): worth a retry
		// later, unlike a bug of the server.
		return codes.Unavailable
	}
	return codes.Internal
}

// storeStatus is the HTTP status of an object store's answer that err
// carries, 0 for none.
func storeStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
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
//
// An invalid request is told its reason without the sentinel's words
// ("quiver: invalid online request: "): the code, InvalidArgument on every
// surface, already says that much.
func clientMessage(err error) string {
	if errors.Is(err, online.ErrUnavailable) {
		return online.ErrUnavailable.Error() + " (the server log has the cause)"
	}
	msg := err.Error()
	for _, sentinel := range []error{online.ErrInvalidRequest, offline.ErrInvalidRequest, stream.ErrInvalidPush} {
		if errors.Is(err, sentinel) {
			return strings.TrimPrefix(msg, sentinel.Error()+": ")
		}
	}
	return msg
}

// httpStatus is the HTTP status of a core error.
func httpStatus(err error) int { return wire.HTTPStatus(errorCode(err)) }
