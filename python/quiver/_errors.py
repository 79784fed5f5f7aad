"""One exception type for every error the server or the transport returns."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.flight as flight

# The gRPC code names, as the server's HTTP error bodies and gRPC statuses
# spell them.
CODES = (
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
    "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
    "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
    "Internal", "Unavailable", "DataLoss", "Unauthenticated",
)

# Arrow Flight's C++ client words a gRPC status as
# "Flight returned <words> error, with message: <reason>"; <words> is the
# code in lower case with spaces.
_WORDS = {re.sub(r"(?<!^)(?=[A-Z])", " ", c).lower(): c for c in CODES}
_WORDS["cancelled"] = "Canceled"
_FLIGHT_MESSAGE = re.compile(r"(?:Flight|gRPC) returned (?P<words>[a-z ]+?) error, with message: (?P<reason>.*)", re.S)
# What the C++ client adds after the server's reason.
_TRAILERS = re.compile(r"(\. gRPC client debug context: .*|\. Client context: .*|\. Detail: .*)$", re.S)

# When the message does not name the code, the exception type does.
_BY_TYPE = (
    (flight.FlightUnauthenticatedError, "Unauthenticated"),
    (flight.FlightUnauthorizedError, "PermissionDenied"),
    (flight.FlightUnavailableError, "Unavailable"),
    (flight.FlightTimedOutError, "DeadlineExceeded"),
    (flight.FlightCancelledError, "Canceled"),
    (flight.FlightInternalError, "Internal"),
    (pa.ArrowInvalid, "InvalidArgument"),
    (pa.ArrowKeyError, "NotFound"),
    (pa.ArrowNotImplementedError, "Unimplemented"),
)


class QuiverError(Exception):
    """An error from a Quiver server or from reaching it.

    ``code`` is the gRPC code name ("InvalidArgument", "NotFound",
    "Unauthenticated", ...) on every surface, HTTP included; ``reason`` is
    the server's message. ``str(err)`` is ``"CODE: reason"``.
    """

    def __init__(self, code: str, reason: str, http_status: int | None = None):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.http_status = http_status


def from_flight(err: Exception) -> QuiverError:
    """The QuiverError of an exception pyarrow.flight raised."""
    msg = str(err)
    m = _FLIGHT_MESSAGE.search(msg)
    if m:
        code = _WORDS.get(m.group("words").strip(), "Unknown")
        reason = _TRAILERS.sub("", m.group("reason")).strip()
        if code == "Unknown":
            for typ, c in _BY_TYPE:
                if isinstance(err, typ):
                    code = c
                    break
        return QuiverError(code, reason)
    for typ, c in _BY_TYPE:
        if isinstance(err, typ):
            return QuiverError(c, _TRAILERS.sub("", msg).strip())
    return QuiverError("Unknown", msg)


_HTTP_CODES = {400: "InvalidArgument", 401: "Unauthenticated", 403: "PermissionDenied",
               404: "NotFound", 405: "Unimplemented", 408: "DeadlineExceeded",
               409: "Aborted", 413: "ResourceExhausted", 429: "ResourceExhausted",
               499: "Canceled", 500: "Internal", 501: "Unimplemented",
               503: "Unavailable", 504: "DeadlineExceeded"}


def from_http(status: int, body: bytes) -> QuiverError:
    """The QuiverError of an HTTP error answer: the server's JSON body
    {"error": "...", "code": "InvalidArgument"}, or the status alone when
    the body is not one (a proxy's page)."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        code = doc.get("code") or _HTTP_CODES.get(status, "Unknown")
        return QuiverError(code, doc["error"], status)
    text = body.decode("utf-8", "replace").strip()[:500] or f"HTTP status {status}"
    return QuiverError(_HTTP_CODES.get(status, "Unknown"), text, status)
