"""The client against a real quiver serve over the quickstart."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import quiver

from conftest import FEATURES, TOKEN


@pytest.fixture(scope="session")
def labels(repo) -> pa.Table:
    return pq.read_table(repo / "data" / "driver_labels.parquet")


@pytest.fixture(scope="session")
def cli_set(repo) -> pa.Table:
    with ipc.open_file(repo / "cli.arrow") as f:
        return f.read_all()


def _same(got: pa.Table, want: pa.Table):
    assert got.schema.equals(want.schema), f"schema\n{got.schema}\n!=\n{want.schema}"
    assert got.num_rows == want.num_rows
    assert got.combine_chunks().equals(want.combine_chunks())


def test_training_set_from_path_equals_cli(client, cli_set, labels):
    got = client.training_set("driver_labels.parquet", features=FEATURES).to_arrow()
    _same(got, cli_set)
    # Rows in the entity table's order.
    assert got.column("driver_id").equals(labels.column("driver_id"))
    assert got.column("event_timestamp").cast(pa.int64()).equals(labels.column("event_timestamp").cast(pa.int64()))


def test_training_set_from_table_equals_cli(client, cli_set, labels):
    _same(client.training_set(labels, features=FEATURES).to_arrow(), cli_set)


def test_training_set_from_dataframe_equals_cli(client, cli_set, labels):
    df = labels.to_pandas()
    assert isinstance(df, pd.DataFrame)
    got = client.training_set(df, features=FEATURES)
    _same(got.to_arrow(), cli_set)
    out = got.to_pandas()
    assert list(out["driver_id"]) == list(df["driver_id"])
    assert list(out.columns) == cli_set.column_names


def test_training_set_full_feature_names_and_service(client, labels):
    t = client.training_set(labels, features=["driver_hourly:conv_rate"], full_feature_names=True).to_arrow()
    assert "driver_hourly__conv_rate" in t.column_names
    views = client.list_feature_views()
    services = [v["name"] for v in views if v["kind"] == "feature_service"]
    assert services, views
    t = client.training_set("driver_labels.parquet", feature_service=services[0]).to_arrow()
    assert t.num_rows == labels.num_rows


def test_training_set_as_of(client, labels, cli_set):
    # As of a time before any feature row was known: no features; as of
    # now, the same set; as a datetime, a date or a string.
    early = client.training_set(labels, features=FEATURES, as_of=dt.date(2000, 1, 1)).to_arrow()
    assert early.num_rows == cli_set.num_rows
    assert early.column("conv_rate").null_count == early.num_rows
    now = dt.datetime.now(dt.timezone.utc)
    _same(client.training_set("driver_labels.parquet", features=FEATURES, as_of=now).to_arrow(), cli_set)
    _same(client.training_set(labels, features=FEATURES, as_of=now.isoformat()).to_arrow(), cli_set)
    saved = client.save_training_set("driver_labels.parquet", "sets/as_of_2000.parquet", features=FEATURES,
                                     as_of=dt.datetime(2000, 1, 1), overwrite=True)
    assert client.dataset(saved.path).to_arrow().column("conv_rate").null_count == saved.rows
    # Each row as of its own time: the same rows, no more features known.
    own = client.training_set(labels, features=FEATURES, as_of_column="event_timestamp").to_arrow()
    assert own.schema.equals(cli_set.schema) and own.num_rows == cli_set.num_rows
    assert own.column("conv_rate").null_count >= cli_set.column("conv_rate").null_count
    _raises("InvalidArgument", 'as_of "yesterday" is not an RFC 3339 time',
            lambda: client.training_set(labels, features=FEATURES, as_of="yesterday").to_arrow())
    with pytest.raises(TypeError):
        client.training_set(labels, features=FEATURES, as_of=17)


def test_training_set_spine(client):
    # No label table: the view's events, or its entities at a cadence.
    end = dt.datetime.now(dt.timezone.utc)
    events = client.training_set(quiver.Spine("driver_hourly", dt.date(2000, 1, 1), end), features=FEATURES).to_arrow()
    assert events.column_names[:2] == ["driver_id", "event_timestamp"]
    assert events.num_rows > 0
    assert events.column("conv_rate").null_count == 0
    start = end - dt.timedelta(days=2)
    grid = client.training_set(quiver.Spine("driver_hourly", start, end, every="1d"), features=FEATURES).to_arrow()
    assert grid.num_rows % 3 == 0 and grid.num_rows > 0
    saved = client.save_training_set(quiver.Spine("driver_hourly", start, end, every="1d"), "sets/spine.parquet",
                                     features=FEATURES, overwrite=True)
    assert saved.rows == grid.num_rows
    _raises("InvalidArgument", 'no feature view "nope"',
            lambda: client.training_set(quiver.Spine("nope", start, end), features=FEATURES).to_arrow())


def test_training_set_timestamp_column(client, labels, cli_set):
    renamed = labels.rename_columns(["driver_id", "label_time", "trip_completed", "surge"])
    got = client.training_set(renamed, features=FEATURES, timestamp_column="label_time").to_arrow()
    assert got.num_rows == cli_set.num_rows
    assert got.column("conv_rate").equals(cli_set.column("conv_rate"))


def test_batches_stream(client):
    n = 50_000
    now = dt.datetime.now(dt.timezone.utc)
    entities = pa.table({
        "driver_id": pa.array([1001 + i % 100 for i in range(n)], pa.int64()),
        "event_timestamp": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    })
    ts = client.training_set(entities, features=["driver_hourly:conv_rate"])
    it = ts.batches()
    first = next(it)
    assert isinstance(first, pa.RecordBatch)
    assert 0 < first.num_rows < n, "the first batch came alone, before the rest"
    sizes = [first.num_rows] + [b.num_rows for b in it]
    assert len(sizes) > 1
    assert sum(sizes) == n
    # Stopping a read early leaves the server able to serve the next one.
    it = client.training_set(entities, features=["driver_hourly:conv_rate"]).batches()
    next(it)
    it.close()
    assert client.training_set(entities.slice(0, 10), features=["driver_hourly:conv_rate"]).to_arrow().num_rows == 10


def test_result_reads_again(client, labels):
    ts = client.training_set(labels, features=FEATURES)
    a = ts.to_arrow()
    b = pa.Table.from_batches(list(ts.batches()))
    assert a.equals(b)


def test_dataset(client, cli_set):
    _same(client.dataset("sets/train.arrow").to_arrow(), cli_set)


def test_schema_and_list(client, cli_set):
    views = {(v["kind"], v["name"]): v["schema"] for v in client.list_feature_views()}
    assert ("feature_view", "driver_hourly") in views
    sch = client.schema("driver_hourly")
    assert sch.field("conv_rate").type == pa.float32()
    assert sch.equals(views[("feature_view", "driver_hourly")])
    assert client.schema(entities="driver_labels.parquet", features=FEATURES).equals(cli_set.schema)
    assert client.schema(dataset="sets/train.arrow").equals(cli_set.schema)


def test_online_features(client, repo, quiver_bin):
    got = client.online_features(entities={"driver_id": [1001, 1002, 9999]},
                                 features=["driver_hourly:conv_rate", "driver_hourly:acc_rate"])
    assert got.rows == 3
    assert got.registry_version >= 1
    assert got.names == ["conv_rate", "acc_rate"]
    assert got.statuses["conv_rate"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    assert got.values["conv_rate"][2] is None
    assert all(isinstance(v, float) for v in got.values["conv_rate"][:2])
    assert got.types["conv_rate"] == "float32"
    assert got.event_timestamps["conv_rate"][0].tzinfo is not None
    df = got.to_pandas()
    assert list(df.columns) == ["driver_id", "conv_rate", "acc_rate"]
    assert list(df["driver_id"]) == [1001, 1002, 9999]
    # The same values as the CLI's lookup (float32 through JSON: compare closely).
    full = client.online_features(entities={"driver_id": [1001]}, features=["driver_hourly:conv_rate"],
                                  full_feature_names=True)
    assert full.names == ["driver_hourly__conv_rate"]
    assert full.values["driver_hourly__conv_rate"][0] == pytest.approx(got.values["conv_rate"][0])


def test_online_request_context(client):
    base = client.online_features(entities={"driver_id": [1001]}, features=["driver_hourly:conv_rate"])
    got = client.online_features(entities={"driver_id": [1001]},
                                 features=["driver_scores:adjusted_conv"], request_context={"surge": [2.0]})
    assert got.statuses["adjusted_conv"] == ["PRESENT"]
    assert got.values["adjusted_conv"][0] == pytest.approx(2.0 * base.values["conv_rate"][0], rel=1e-5)


def test_push_then_online(client):
    now = dt.datetime.now(dt.timezone.utc)
    assert client.push("driver_app", [{"driver_id": 1003, "available": False, "battery": 0.25, "ts": now}]) == 1
    got = client.online_features(entities={"driver_id": [1003]},
                                 features=["driver_status:available", "driver_status:battery"])
    assert got.statuses["battery"] == ["PRESENT"]
    assert got.values["battery"] == [pytest.approx(0.25)]
    assert got.values["available"] == [False]
    # A DataFrame of rows pushes the same way.
    df = pd.DataFrame({"driver_id": [1004], "available": [True], "battery": [0.75], "ts": [pd.Timestamp(now)]})
    assert client.push("driver_app", df) == 1
    got = client.online_features(entities={"driver_id": [1004]}, features=["driver_status:battery"])
    assert got.values["battery"] == [pytest.approx(0.75)]


def _raises(code: str, contains: str, fn, *args, **kwargs) -> quiver.QuiverError:
    with pytest.raises(quiver.QuiverError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.code == code, str(err)
    assert contains in err.reason, str(err)
    assert str(err) == f"{code}: {err.reason}"
    assert "gRPC client debug context" not in str(err)
    return err


def test_errors_unknown_feature(client, labels):
    bad = ["driver_hourly:nope"]
    want = 'view driver_hourly has no feature "nope"'
    # The reason alone, on every surface: the code says it is invalid.
    for fn, entities in ((client.training_set, "driver_labels.parquet"), (client.training_set, labels)):
        err = _raises("InvalidArgument", want, fn, entities, features=bad)
        assert err.reason == want, str(err)
    err = _raises("InvalidArgument", want, client.online_features, entities={"driver_id": [1001]}, features=bad)
    assert err.reason == want, str(err)
    assert err.http_status == 400


def test_errors_bad_entity_type(client, labels):
    strings = labels.set_column(0, "driver_id", labels.column("driver_id").cast(pa.string()))
    _raises("InvalidArgument", 'entity table column "driver_id"', client.training_set, strings, features=FEATURES)
    _raises("InvalidArgument", "driver_id", client.online_features,
            entities={"driver_id": ["not a number"]}, features=FEATURES)


def test_errors_not_found(client):
    _raises("NotFound", "nope.parquet", client.training_set, "nope.parquet", features=FEATURES)
    _raises("NotFound", "sets/nope.arrow", client.dataset, "sets/nope.arrow")
    _raises("NotFound", "feature_view/nope", client.schema, "nope")


def test_errors_push(client):
    _raises("InvalidArgument", "battery", client.push, "driver_app", [{"driver_id": 1001, "battery": "full"}])
    _raises("InvalidArgument", "nosrc", client.push, "nosrc", [{"driver_id": 1001}])


def test_token_required(server):
    fl, http = server
    for token in (None, "wrong"):
        with quiver.Client(flight=fl, http=http, token=token) as c:
            _raises("Unauthenticated", "bearer token", c.online_features,
                    entities={"driver_id": [1001]}, features=FEATURES)
            _raises("Unauthenticated", "bearer token", c.training_set, "driver_labels.parquet", features=FEATURES)
            _raises("Unauthenticated", "bearer token", c.list_feature_views)


def test_unreachable():
    c = quiver.Client(flight="grpc://127.0.0.1:1", http="http://127.0.0.1:1")
    _raises("Unavailable", "127.0.0.1:1", c.online_features, entities={"driver_id": [1]}, features=FEATURES)
    with pytest.raises(quiver.QuiverError) as info:
        c.dataset("sets/train.arrow")
    assert info.value.code == "Unavailable"


def test_entities_type():
    c = quiver.Client()
    with pytest.raises(TypeError):
        c.training_set(42, features=FEATURES)


def test_flight_error_mapping():
    from quiver._errors import from_flight
    err = from_flight(pa.ArrowInvalid(
        'Flight returned invalid argument error, with message: view v has no feature "x". '
        'gRPC client debug context: UNKNOWN:x. Client context: OK'))
    assert (err.code, err.reason) == ("InvalidArgument", 'view v has no feature "x"')
    err = from_flight(flight.FlightUnauthenticatedError("Flight returned unauthenticated error, with message: no token"))
    assert (err.code, err.reason) == ("Unauthenticated", "no token")
    assert from_flight(pa.ArrowKeyError("Flight returned not found error, with message: gone")).code == "NotFound"
    assert from_flight(flight.FlightUnavailableError("connection refused")).code == "Unavailable"


def test_training_set_join_key_map(client, labels, cli_set):
    renamed = labels.rename_columns(["driver", "event_timestamp", "trip_completed", "surge"])
    got = client.training_set(renamed, features=FEATURES, join_key_map={"driver_id": "driver"}).to_arrow()
    assert got.column("driver").equals(cli_set.column("driver_id"))
    assert got.column("conv_rate").equals(cli_set.column("conv_rate"))


def test_training_set_from_reader(client, labels, cli_set):
    ts = client.training_set(labels.to_reader(max_chunksize=100), features=FEATURES)
    _same(ts.to_arrow(), cli_set)
    with pytest.raises(quiver.QuiverError) as info:
        ts.to_arrow()  # the reader is spent: a second read cannot send the entities again
    assert info.value.code == "FailedPrecondition"


def test_tls(tls_server):
    fl, http, cert = tls_server
    for certs in (cert, cert.read_bytes(), cert.read_text()):
        with quiver.Client(flight=fl, http=http, tls_root_certs=certs) as c:
            assert c.training_set("driver_labels.parquet", features=FEATURES).to_arrow().num_rows == 1000
            got = c.online_features(entities={"driver_id": [1001]}, features=["driver_hourly:conv_rate"])
            assert got.statuses["conv_rate"] == ["PRESENT"]
    # Without the certificate neither surface trusts the server.
    with quiver.Client(flight=fl, http=http) as c:
        with pytest.raises(quiver.QuiverError) as info:
            c.online_features(entities={"driver_id": [1001]}, features=["driver_hourly:conv_rate"])
        assert info.value.code == "Unavailable"
        assert "certificate" in info.value.reason.lower()
        with pytest.raises(quiver.QuiverError) as info:
            c.training_set("driver_labels.parquet", features=FEATURES)
        assert info.value.code == "Unavailable"


def test_cancelled_reads_release_slots(client):
    """Reads stopped after one batch, more of them than the server builds
    at once: if a cancelled read kept its slot, the last request would wait
    forever."""
    import os
    import threading

    n = 200_000
    now = dt.datetime.now(dt.timezone.utc)
    entities = pa.table({
        "driver_id": pa.array([1001 + i % 100 for i in range(n)], pa.int64()),
        "event_timestamp": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    })
    slots = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    done = threading.Event()
    failure = []

    def reads():
        try:
            for _ in range(2 * slots + 1):
                it = client.training_set(entities, features=FEATURES).batches()
                next(it)
                it.close()
            assert client.training_set(entities.slice(0, 5), features=FEATURES).to_arrow().num_rows == 5
        except BaseException as e:  # reported below
            failure.append(e)
        finally:
            done.set()

    threading.Thread(target=reads, daemon=True).start()
    assert done.wait(120), "a request waited on a slot that a cancelled read kept"
    if failure:
        raise failure[0]


def test_inputs_from_numpy_pandas_and_arrow(client):
    import numpy as np

    want = client.online_features(entities={"driver_id": [1001, 1002]}, features=["driver_hourly:conv_rate"])
    for ids in (np.array([1001, 1002], dtype=np.int64), pd.Series([1001, 1002])):
        got = client.online_features(entities={"driver_id": ids}, features=["driver_hourly:conv_rate"])
        assert got.values == want.values
        assert got.entities == {"driver_id": [1001, 1002]}
    now = dt.datetime.now(dt.timezone.utc)
    rows = pa.table({"driver_id": pa.array([1005], pa.int64()), "available": [True],
                     "battery": pa.array([0.5], pa.float32()), "ts": pa.array([now], pa.timestamp("us", tz="UTC"))})
    assert client.push("driver_app", rows) == 1
    got = client.online_features(entities={"driver_id": np.array([1005])}, features=["driver_status:battery"])
    assert got.values["battery"] == [pytest.approx(0.5)]


def test_save_training_set_from_path(client, repo, cli_set):
    saved = client.save_training_set("driver_labels.parquet", "sets/saved.arrow", features=FEATURES, overwrite=True)
    assert saved.path == "sets/saved.arrow" and saved.format == "arrow"
    assert saved.rows == cli_set.num_rows and saved.bytes == (repo / "data" / "sets" / "saved.arrow").stat().st_size
    _same(client.dataset("sets/saved.arrow").to_arrow(), cli_set)
    # A second save without overwrite is refused and leaves the file as it was.
    with pytest.raises(quiver.QuiverError) as info:
        client.save_training_set("driver_labels.parquet", "sets/saved.arrow", features=FEATURES[:1])
    assert info.value.code == "AlreadyExists" and "sets/saved.arrow" in info.value.reason
    _same(client.dataset("sets/saved.arrow").to_arrow(), cli_set)


def test_save_training_set_from_table_and_parquet(client, labels, cli_set):
    saved = client.save_training_set(labels, "sets/uploaded.parquet", features=FEATURES, overwrite=True)
    assert saved.format == "parquet" and saved.rows == labels.num_rows
    got = client.dataset("sets/uploaded.parquet").to_arrow()
    assert got.column_names == cli_set.column_names
    for name in cli_set.column_names:
        assert got.column(name).to_pylist() == cli_set.column(name).to_pylist(), name


def test_save_training_set_refuses_paths_out_of_the_root(client):
    for bad in ("../escape.arrow", "/tmp/escape.arrow", "sets/x.csv"):
        with pytest.raises(quiver.QuiverError) as info:
            client.save_training_set("driver_labels.parquet", bad, features=FEATURES)
        assert info.value.code == "InvalidArgument", (bad, info.value)


def test_dataset_parts_cover_every_row_once(client, labels):
    # Enough rows for several record batches of the saved file.
    big = pa.concat_tables([labels] * (200_000 // labels.num_rows + 1))
    saved = client.save_training_set(big, "sets/big.arrow", features=FEATURES, overwrite=True)
    parts = client.dataset_parts("sets/big.arrow")
    assert len(parts) > 1
    assert sum(p.rows for p in parts) == saved.rows == big.num_rows
    pieces = [client.read_part(p).to_arrow() for p in parts]
    assert [t.num_rows for t in pieces] == [p.rows for p in parts]
    whole = client.dataset("sets/big.arrow").to_arrow()
    assert pa.concat_tables(pieces).combine_chunks().equals(whole.combine_chunks())


def test_dataset_part_of_a_replaced_file_is_aborted(client, labels):
    client.save_training_set(labels, "sets/replaced.arrow", features=FEATURES, overwrite=True)
    parts = client.dataset_parts("sets/replaced.arrow")
    client.save_training_set(labels.slice(0, 10), "sets/replaced.arrow", features=FEATURES, overwrite=True)
    with pytest.raises(quiver.QuiverError) as info:
        client.read_part(parts[0]).to_arrow()
    assert info.value.code == "Aborted" and "changed" in info.value.reason


def test_client_pickles_without_its_connection(client, cli_set):
    import pickle

    again = pickle.loads(pickle.dumps(client))
    try:
        _same(again.dataset("sets/train.arrow").to_arrow(), cli_set)
    finally:
        again.close()


def test_merge_parts_joins_neighbours_only():
    from quiver._client import DatasetPart, merge_parts

    def part(i, lo, hi, rows=10, version="v1", path="s.arrow"):
        t = json.dumps({"kind": "dataset", "path": path, "range": [lo, hi], "version": version}).encode()
        return DatasetPart(index=i, ticket=t, rows=rows)

    got = merge_parts([part(0, 0, 2), part(1, 2, 3), part(2, 5, 6), part(3, 6, 8, version="v2"), part(4, 8, 9, version="v2", rows=-1)])
    assert [json.loads(p.ticket)["range"] for p in got] == [[0, 3], [5, 6], [6, 9]]
    assert [p.rows for p in got] == [20, 10, -1]
    # A ticket that is not a ranged dataset ticket is kept as it is.
    whole = DatasetPart(index=0, ticket=b'{"kind":"dataset","path":"s.arrow"}', rows=5)
    assert merge_parts([whole, part(1, 0, 1)]) == [whole, part(1, 0, 1)]
