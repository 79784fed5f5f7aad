"""The client: Arrow Flight for tables, HTTP for online lookups and push."""

from __future__ import annotations

import datetime as _dt
import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.flight as flight

from ._errors import QuiverError, from_flight, from_http

_DEFAULT_TIMEOUT = 60.0


def _pem(certs: str | bytes | os.PathLike | None) -> bytes | None:
    """PEM bytes from PEM text or bytes, or from a file that holds them."""
    if certs is None:
        return None
    if isinstance(certs, bytes):
        return certs
    if isinstance(certs, str) and "-----BEGIN" in certs:
        return certs.encode()
    with open(certs, "rb") as f:
        return f.read()


def _json_value(v: Any) -> Any:
    """A value as the server's JSON takes it: datetimes as RFC 3339 (naive
    ones as UTC), NumPy and pandas scalars as Python ones."""
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # a NumPy scalar
        return _json_value(v.item())
    if hasattr(v, "to_pydatetime"):  # a pandas Timestamp
        return _json_value(v.to_pydatetime())
    return v


def _columns(m: Mapping[str, Any] | None) -> dict[str, list] | None:
    if m is None:
        return None
    out = {}
    for k, vals in m.items():
        if hasattr(vals, "tolist"):
            vals = vals.tolist()
        elif not isinstance(vals, (list, tuple)):
            vals = [vals]
        out[k] = [_json_value(v) for v in vals]
    return out


class TrainingSet:
    """A result streamed over Arrow Flight: a training set or a saved
    dataset. Reading starts when the call returns (errors raise there);
    ``batches()`` streams the record batches as they arrive, ``to_arrow()``
    and ``to_pandas()`` read them all. Reading it a second time asks the
    server again."""

    def __init__(self, opener: Callable[[], Any]):
        self._opener = opener
        self._reader = self._open()

    def _open(self):
        reader = None
        try:
            reader = self._opener()
            reader.schema  # waits for the server's first message: errors raise now
            return reader
        except (flight.FlightError, pa.ArrowException) as e:
            if isinstance(reader, _ExchangeReader):
                reader._close()
            raise from_flight(e) from e

    def _take(self):
        reader, self._reader = self._reader, None
        return reader if reader is not None else self._open()

    @property
    def schema(self) -> pa.Schema:
        if self._reader is None:
            self._reader = self._open()
        return self._reader.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The record batches, one at a time as the server sends them."""
        reader = self._take()
        try:
            while True:
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    return
                if chunk.data is not None:
                    yield chunk.data
        except (flight.FlightError, pa.ArrowException) as e:
            raise from_flight(e) from e
        finally:
            cancel = getattr(reader, "cancel", None)
            if cancel is not None:
                try:
                    cancel()
                except Exception:
                    pass

    def close(self) -> None:
        """Stops a read that was opened and not read (the server stops
        sending). Reading again asks the server again."""
        reader, self._reader = self._reader, None
        cancel = getattr(reader, "cancel", None)
        if cancel is not None:
            try:
                cancel()
            except Exception:
                pass

    def to_arrow(self) -> pa.Table:
        """All rows as one pyarrow.Table."""
        reader = self._take()
        try:
            return reader.read_all()
        except (flight.FlightError, pa.ArrowException) as e:
            raise from_flight(e) from e

    def to_pandas(self, **kwargs):
        """All rows as a pandas.DataFrame (needs pandas)."""
        return self.to_arrow().to_pandas(**kwargs)


@dataclass(frozen=True)
class SavedDataset:
    """A training set saved on the server: its path within the data root,
    format ("arrow" or "parquet"), rows, size in bytes, and version (the
    file's identity, which changes when it is replaced)."""

    path: str
    format: str
    rows: int
    bytes: int
    version: str

    @classmethod
    def _from_json(cls, raw: bytes) -> "SavedDataset":
        try:
            doc = json.loads(raw)
            return cls(path=doc["path"], format=doc.get("format", ""), rows=int(doc.get("rows", 0)),
                       bytes=int(doc.get("bytes", 0)), version=doc.get("version", ""))
        except (ValueError, KeyError, TypeError) as e:
            raise QuiverError("Internal", f"the server's answer is not a saved dataset: {raw[:200]!r}") from e


@dataclass(frozen=True)
class DatasetPart:
    """One part of a saved dataset: its place among the parts, the Flight
    ticket that reads it, and its rows (-1 when the server did not say)."""

    index: int
    ticket: bytes
    rows: int


def merge_parts(parts: Sequence[DatasetPart]) -> list[DatasetPart]:
    """The parts with each run of neighbours (one file, one version,
    consecutive ranges) made one part, read by one Flight DoGet."""
    out: list[DatasetPart] = []
    last: dict | None = None
    for p in parts:
        try:
            cmd = json.loads(p.ticket)
            rng = cmd.get("range")
        except (ValueError, AttributeError):
            cmd, rng = None, None
        if (last is not None and cmd is not None and rng and last.get("range")
                and {k: v for k, v in cmd.items() if k != "range"} == {k: v for k, v in last.items() if k != "range"}
                and last["range"][1] == rng[0]):
            last["range"] = [last["range"][0], rng[1]]
            prev = out[-1]
            rows = prev.rows + p.rows if prev.rows >= 0 and p.rows >= 0 else -1
            out[-1] = DatasetPart(index=prev.index, ticket=json.dumps(last, separators=(",", ":")).encode(), rows=rows)
            continue
        last = cmd if rng else None
        out.append(p)
    return out


class DatasetParts(list):
    """The parts of a saved dataset, in order, and its ``rows``."""

    rows: int = -1


class OnlineFeatures:
    """The answer of an online lookup: the request's entity columns, each
    feature's values and statuses ("PRESENT", "NULL_VALUE", "NOT_FOUND",
    "OUTSIDE_MAX_AGE", "EVALUATION_ERROR") and event times."""

    def __init__(self, doc: dict, entities: Mapping[str, list]):
        self.rows: int = doc.get("rows", 0)
        self.registry_version: int = doc.get("registry_version", 0)
        self.entities: dict[str, list] = dict(entities)
        feats = doc.get("features") or []
        self.names: list[str] = [f["name"] for f in feats]
        self.types: dict[str, str] = {f["name"]: f.get("type", "") for f in feats}
        self.values: dict[str, list] = {f["name"]: f.get("values") or [] for f in feats}
        self.statuses: dict[str, list[str]] = {f["name"]: f.get("statuses") or [] for f in feats}
        self.event_timestamps: dict[str, list] = {
            f["name"]: [None if t is None else _parse_time(t) for t in (f.get("event_timestamps") or [])]
            for f in feats}

    def to_dict(self) -> dict[str, list]:
        """The entity columns, then one column per feature."""
        out = {k: list(v) for k, v in self.entities.items()}
        out.update(self.values)
        return out

    def to_pandas(self):
        """A pandas.DataFrame of to_dict() (needs pandas)."""
        import pandas as pd
        return pd.DataFrame(self.to_dict())

    def __repr__(self) -> str:
        return f"OnlineFeatures(rows={self.rows}, features={self.names})"


def _parse_time(s: str) -> _dt.datetime:
    # RFC 3339 from Go: up to nine fractional digits, "Z" for UTC.
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        s = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return _dt.datetime.fromisoformat(s)



def _as_of(value) -> str | None:
    """An as_of cutoff as the RFC 3339 string the server takes."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).isoformat()
    raise TypeError(f"as_of takes a datetime, a date or an RFC 3339 string, not {type(value).__name__}")


@dataclass(frozen=True)
class Spine:
    """An entity table the server generates from a feature view, for a
    training set without a label table: the view's events from ``start``
    to ``end`` (both included), or with ``every`` (a duration such as
    "1h" or "1d") every entity of the view at that cadence. Pass it as a
    training set's ``entities``; the rows have the view's join keys and
    ``event_timestamp``."""

    view: str
    start: Any
    end: Any
    every: str | None = None

    def _json(self) -> dict:
        out = {"view": self.view, "start": _as_of(self.start), "end": _as_of(self.end)}
        if self.every:
            out["every"] = self.every
        return out


class Client:
    """A client of one Quiver server.

    ``flight`` is the Arrow Flight location (``grpc://`` or ``grpc+tls://``),
    ``http`` the HTTP base URL (``http://`` or ``https://``). ``token`` is
    sent as ``Authorization: Bearer TOKEN`` on every call; ``tls_root_certs``
    (PEM text, bytes or a file's path) verifies the server's certificate on
    both surfaces. ``timeout`` is the HTTP timeout in seconds.
    """

    def __init__(self, flight: str = "grpc://127.0.0.1:8815", http: str = "http://127.0.0.1:6567",
                 token: str | None = None, tls_root_certs: str | bytes | os.PathLike | None = None,
                 timeout: float = _DEFAULT_TIMEOUT):
        self._flight_location = flight
        self._http = http.rstrip("/") if http else None
        self._token = token
        self._certs = _pem(tls_root_certs)
        self._timeout = timeout
        self._flight_client: Any = None
        self._ssl: ssl.SSLContext | None = None
        if self._http and self._http.startswith("https://"):
            self._ssl = ssl.create_default_context(cadata=self._certs.decode() if self._certs else None)

    def __getstate__(self) -> dict:
        # A client crosses into DataLoader workers (pickled, or copied by
        # fork): the copy opens connections of its own.
        state = dict(self.__dict__)
        state["_flight_client"] = None
        state["_ssl"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._http and self._http.startswith("https://"):
            self._ssl = ssl.create_default_context(cadata=self._certs.decode() if self._certs else None)

    def clone(self) -> "Client":
        """A client of the same server with connections of its own (for
        another process or thread)."""
        c = Client.__new__(Client)
        c.__setstate__(self.__getstate__())
        return c

    # Arrow Flight

    def _flight(self):
        if self._flight_client is None:
            if not self._flight_location:
                raise QuiverError("FailedPrecondition", "this client has no Flight location")
            kwargs = {}
            if self._certs is not None:
                kwargs["tls_root_certs"] = self._certs
            self._flight_client = flight.FlightClient(self._flight_location, **kwargs)
        return self._flight_client

    def _options(self) -> flight.FlightCallOptions:
        headers = []
        if self._token:
            headers.append((b"authorization", f"Bearer {self._token}".encode()))
        return flight.FlightCallOptions(headers=headers)

    def close(self) -> None:
        """Closes the Flight connection."""
        if self._flight_client is not None:
            self._flight_client.close()
            self._flight_client = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _command(kind: str, **fields) -> bytes:
        cmd = {"kind": kind}
        cmd.update({k: v for k, v in fields.items() if v not in (None, "", [], {}, False)})
        return json.dumps(cmd).encode()

    def training_set(self, entities, features: Sequence[str] | None = None, feature_service: str | None = None,
                     full_feature_names: bool = False, timestamp_column: str = "event_timestamp",
                     join_key_map: Mapping[str, str] | None = None, as_of=None,
                     as_of_column: str | None = None) -> TrainingSet:
        """A point-in-time training set: each entity row joined with the
        feature values known at its timestamp, rows in the entity table's
        order.

        ``entities`` is a pyarrow.Table (or RecordBatch, or RecordBatchReader),
        a pandas.DataFrame, or a Parquet path or glob within the server's
        data root, or a ``Spine`` the server generates the rows from. A table
        is streamed to the server (Flight DoExchange); a path or a spine is
        read by the server (DoGet).

        ``as_of`` (a datetime, naive meaning UTC, a date, or an RFC 3339
        string) builds the set as of what was known then: feature rows
        created later are left out, so a set rebuilt today matches the one a
        model trained on that date saw."""
        fields = dict(features=list(features) if features else None, feature_service=feature_service,
                      full_feature_names=full_feature_names,
                      timestamp_column=None if timestamp_column == "event_timestamp" else timestamp_column,
                      join_key_map=dict(join_key_map) if join_key_map else None, as_of=_as_of(as_of),
                      as_of_column=as_of_column)
        if isinstance(entities, Spine):
            ticket = flight.Ticket(self._command("training_set", spine=entities._json(), **fields))
            return TrainingSet(lambda: self._flight().do_get(ticket, self._options()))
        if isinstance(entities, (str, os.PathLike)):
            ticket = flight.Ticket(self._command("training_set", entities=os.fspath(entities), **fields))
            return TrainingSet(lambda: self._flight().do_get(ticket, self._options()))
        source = _entity_source(entities)
        descriptor = flight.FlightDescriptor.for_command(self._command("training_set", **fields))

        def exchange():
            batches = source()
            writer, reader = self._flight().do_exchange(descriptor, self._options())
            try:
                writer.begin(batches.schema)
                for batch in batches:
                    writer.write_batch(batch)
                writer.done_writing()
            except (flight.FlightError, pa.ArrowException):
                # The server refused the stream; its reason comes with the reader.
                pass
            return _ExchangeReader(writer, reader)

        return TrainingSet(exchange)

    def dataset(self, path: str) -> TrainingSet:
        """A saved training set (an Arrow IPC or Parquet file within the
        server's data root), streamed as stored."""
        ticket = flight.Ticket(self._command("dataset", path=os.fspath(path)))
        return TrainingSet(lambda: self._flight().do_get(ticket, self._options()))

    def save_training_set(self, entities, path: str, features: Sequence[str] | None = None,
                          feature_service: str | None = None, full_feature_names: bool = False,
                          timestamp_column: str = "event_timestamp", join_key_map: Mapping[str, str] | None = None,
                          overwrite: bool = False, as_of=None, as_of_column: str | None = None) -> "SavedDataset":
        """Builds a training set on the server and saves it there, at
        ``path`` within the server's data root (``.arrow`` for an Arrow IPC
        file, ``.parquet`` for Parquet), so that a job builds it once and
        reads it for many epochs with ``dataset(path)`` or
        ``quiver.torch.FlightDataset``. The file appears whole or not at
        all; an existing one is replaced only with ``overwrite=True``.

        ``entities`` is what ``training_set`` takes: a path within the data
        root is read by the server (a Flight action), a table or DataFrame is
        uploaded (Flight DoPut). ``as_of`` and ``as_of_column`` are
        ``training_set``'s."""
        fields = dict(features=list(features) if features else None, feature_service=feature_service,
                      full_feature_names=full_feature_names,
                      timestamp_column=None if timestamp_column == "event_timestamp" else timestamp_column,
                      join_key_map=dict(join_key_map) if join_key_map else None,
                      out=os.fspath(path), overwrite=overwrite, as_of=_as_of(as_of), as_of_column=as_of_column)
        try:
            if isinstance(entities, (Spine, str, os.PathLike)):
                where = dict(spine=entities._json()) if isinstance(entities, Spine) else dict(entities=os.fspath(entities))
                body = self._command("training_set", **where, **fields)
                results = list(self._flight().do_action(flight.Action("save_training_set", body), self._options()))
                if not results:
                    raise QuiverError("Internal", "the server answered save_training_set with no result")
                return SavedDataset._from_json(results[0].body.to_pybytes())
            batches = _entity_source(entities)()
            descriptor = flight.FlightDescriptor.for_command(self._command("training_set", **fields))
            writer, meta = self._flight().do_put(descriptor, batches.schema, self._options())
            try:
                for batch in batches:
                    writer.write_batch(batch)
                writer.done_writing()
                buf = meta.read()
            finally:
                writer.close()
            if buf is None:
                raise QuiverError("Internal", "the server answered the upload with no result")
            return SavedDataset._from_json(buf.to_pybytes())
        except (flight.FlightError, pa.ArrowException) as e:
            raise from_flight(e) from e

    def dataset_parts(self, path: str) -> "DatasetParts":
        """The parts of a saved dataset that readers can fetch in
        parallel, in order: each a range of the file's record batches (or
        Parquet row groups) with its row count. Every part is tied to the
        file as it is now; reading one after the file was replaced raises
        ``Aborted``. The list's ``rows`` is the dataset's (-1 when the
        server did not say)."""
        d = flight.FlightDescriptor.for_command(self._command("dataset", path=os.fspath(path)))
        try:
            info = self._flight().get_flight_info(d, self._options())
        except (flight.FlightError, pa.ArrowException) as e:
            raise from_flight(e) from e
        parts = DatasetParts()
        parts.rows = info.total_records
        for i, ep in enumerate(info.endpoints):
            rows = -1
            meta = getattr(ep, "app_metadata", b"") or b""
            if meta:
                try:
                    rows = int(json.loads(meta).get("rows", -1))
                except (ValueError, AttributeError):
                    rows = -1
            parts.append(DatasetPart(index=i, ticket=ep.ticket.ticket, rows=rows))
        return parts

    def read_part(self, part: "DatasetPart") -> TrainingSet:
        """One part of a saved dataset (from ``dataset_parts``)."""
        ticket = flight.Ticket(part.ticket)
        return TrainingSet(lambda: self._flight().do_get(ticket, self._options()))

    def list_feature_views(self) -> list[dict]:
        """The registry's datasets: one dict per feature view, on-demand
        view and feature service, with its kind, name and Arrow schema."""
        try:
            infos = list(self._flight().list_flights(b"", self._options()))
        except (flight.FlightError, pa.ArrowException) as e:
            raise from_flight(e) from e
        out = []
        for info in infos:
            path = [p.decode() if isinstance(p, bytes) else p for p in info.descriptor.path]
            kind, name = (path[0], "/".join(path[1:])) if len(path) > 1 else ("", "/".join(path))
            out.append({"kind": kind, "name": name, "schema": info.schema})
        return out

    def schema(self, name: str | None = None, *, kind: str = "feature_view", entities: str | None = None,
               features: Sequence[str] | None = None, feature_service: str | None = None,
               full_feature_names: bool = False, timestamp_column: str = "event_timestamp",
               dataset: str | None = None) -> pa.Schema:
        """An Arrow schema, from the server without reading rows:

        - ``schema("driver_hourly")``: a feature view's columns (``kind``
          "on_demand_feature_view" or "feature_service" for the others);
        - ``schema(entities="labels.parquet", features=[...])``: the
          training set's;
        - ``schema(dataset="sets/train.arrow")``: a saved dataset's."""
        if dataset is not None:
            d = flight.FlightDescriptor.for_command(self._command("dataset", path=dataset))
        elif entities is not None:
            d = flight.FlightDescriptor.for_command(self._command(
                "training_set", entities=entities, features=list(features) if features else None,
                feature_service=feature_service, full_feature_names=full_feature_names,
                timestamp_column=None if timestamp_column == "event_timestamp" else timestamp_column))
        elif name is not None:
            d = flight.FlightDescriptor.for_path(kind, name)
        else:
            raise TypeError("schema() needs a name, entities or a dataset")
        try:
            return self._flight().get_schema(d, self._options()).schema
        except (flight.FlightError, pa.ArrowException) as e:
            raise from_flight(e) from e

    # HTTP

    def _post(self, path: str, body: dict) -> dict:
        if not self._http:
            raise QuiverError("FailedPrecondition", "this client has no HTTP address")
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        req = urllib.request.Request(self._http + path, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout, context=self._ssl) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise from_http(e.code, e.read()) from None
        except urllib.error.URLError as e:
            raise QuiverError("Unavailable", f"reach {self._http}: {e.reason}") from e
        except TimeoutError as e:
            raise QuiverError("DeadlineExceeded", f"no answer from {self._http} in {self._timeout}s") from e

    def online_features(self, entities: Mapping[str, Any], features: Sequence[str] | None = None,
                        feature_service: str | None = None, request_context: Mapping[str, Any] | None = None,
                        full_feature_names: bool = False) -> OnlineFeatures:
        """The latest values of features for entities, from the online
        store: ``entities`` maps each join key to its values (a list, a
        NumPy array or a pandas Series), ``request_context`` the request
        fields of on-demand views likewise."""
        ents = _columns(entities) or {}
        body: dict[str, Any] = {"entities": ents}
        if features:
            body["features"] = list(features)
        if feature_service:
            body["feature_service"] = feature_service
        if full_feature_names:
            body["full_feature_names"] = True
        if request_context:
            body["request_context"] = _columns(request_context)
        return OnlineFeatures(self._post("/v1/online-features", body), ents)

    def push(self, source: str, rows: Iterable[Mapping[str, Any]] | Any) -> int:
        """Writes rows of a push source to the online store and the offline
        log; returns the number of rows applied. ``rows`` is a list of
        dicts, a pyarrow.Table or a pandas.DataFrame; each row holds every
        field of the source's schema. A bad row refuses the whole push."""
        if isinstance(rows, pa.Table):
            rows = rows.to_pylist()
        elif hasattr(rows, "to_dict") and hasattr(rows, "columns"):
            rows = rows.to_dict(orient="records")
        payload = [{k: _json_value(v) for k, v in r.items()} for r in rows]
        return self._post("/v1/push", {"source": source, "rows": payload}).get("rows", 0)


class _ExchangeReader:
    """The reading half of a DoExchange, keeping the writer alive."""

    def __init__(self, writer, reader):
        self._writer = writer
        self._reader = reader

    @property
    def schema(self):
        return self._reader.schema

    def read_chunk(self):
        return self._reader.read_chunk()

    def read_all(self):
        try:
            return self._reader.read_all()
        finally:
            self._close()

    def cancel(self):
        try:
            self._reader.cancel()
        finally:
            self._close()

    def _close(self):
        try:
            self._writer.close()
        except Exception:
            pass


def _entity_source(entities) -> Callable[[], pa.RecordBatchReader]:
    """A function that gives the entity rows as a RecordBatchReader, again
    at each call (a second read of a result sends them again)."""
    if isinstance(entities, pa.RecordBatch):
        entities = pa.Table.from_batches([entities])
    if isinstance(entities, pa.Table):
        table = entities
        return lambda: table.to_reader(max_chunksize=64 * 1024)
    if isinstance(entities, pa.RecordBatchReader):
        used = []

        def once():
            if used:
                raise QuiverError("FailedPrecondition", "a RecordBatchReader of entities can be read once; pass a Table to read the result again")
            used.append(True)
            return entities
        return once
    if hasattr(entities, "columns") and hasattr(entities, "dtypes"):  # a pandas.DataFrame
        table = pa.Table.from_pandas(entities, preserve_index=False)
        return lambda: table.to_reader(max_chunksize=64 * 1024)
    raise TypeError(f"entities must be a pyarrow.Table, a pandas.DataFrame or a path, not {type(entities).__name__}")
