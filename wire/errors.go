package wire

import (
	"net/http"

	"google.golang.org/grpc/codes"
)

// ErrorBody is the JSON body of every HTTP error answer: the server's
// reason, and the gRPC code name the same failure has on gRPC and Flight
// ("InvalidArgument", "Unavailable", ...), so a client raises one kind of
// error whatever the surface.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// StatusClientClosedRequest is the HTTP status of a request whose client
// went away before the answer (nginx's 499; no standard status says it).
const StatusClientClosedRequest = 499

// HTTPStatus is the HTTP status that answers a failure of gRPC code c.
func HTTPStatus(c codes.Code) int {
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
		return StatusClientClosedRequest
	}
	return http.StatusInternalServerError
}
