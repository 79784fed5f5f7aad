"""quiver.torch against a real quiver serve, with a real (CPU) torch."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import FEATURES, ROOT, TOKEN, _unavailable

try:
    import torch
except ImportError:  # pragma: no cover - reported by the fixture below
    torch = None

import quiver

if torch is not None:
    import quiver.torch as qt

ROWS = 150_000


@pytest.fixture(scope="module", autouse=True)
def _needs_torch():
    if torch is None:
        _unavailable("torch is not installed: the quiver.torch tests need it (make integration uses Debian's python3-torch)")


@pytest.fixture(scope="module")
def saved(client):
    """A saved set with a unique row id per entity row, in several parts."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    entities = pa.table({
        "row_id": pa.array(range(ROWS), pa.int64()),
        "driver_id": pa.array([1001 + i % 100 for i in range(ROWS)], pa.int64()),
        "event_timestamp": pa.array([now - dt.timedelta(minutes=i % 600) for i in range(ROWS)], pa.timestamp("us", tz="UTC")),
        "trip_completed": pa.array([i % 3 == 0 for i in range(ROWS)]),
    })
    info = client.save_training_set(entities, "sets/torch.arrow", features=FEATURES, overwrite=True)
    assert info.rows == ROWS
    return "sets/torch.arrow"


def _row_ids(batches) -> list[int]:
    out = []
    for b in batches:
        out.extend(b["row_id"].tolist())
    return out


def test_two_workers_read_every_row_once(client, saved):
    ds = qt.FlightDataset(client, saved, columns=["row_id", "conv_rate"], batch_rows=4096)
    assert len(ds.parts) > 2 and ds.rows == ROWS
    ids = _row_ids(qt.loader(ds, num_workers=2))
    assert len(ids) == ROWS and sorted(ids) == list(range(ROWS))


def test_ranks_and_workers_split_without_overlap(client, saved):
    seen = []
    for rank in range(2):
        ds = qt.FlightDataset(client, saved, columns=["row_id"], rank=rank, world_size=2)
        seen.append(_row_ids(qt.loader(ds, num_workers=2)))
    assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(ROWS))


def test_shuffle_changes_the_order_by_epoch_not_the_rows(client, saved):
    ds = qt.FlightDataset(client, saved, columns=["row_id"], shuffle=True, seed=7)
    first = _row_ids(ds)
    ds.set_epoch(1)
    second = _row_ids(ds)
    assert first != second
    assert sorted(first) == sorted(second) == list(range(ROWS))
    ds.set_epoch(0)
    assert _row_ids(ds) == first


def test_batches_are_fixed_size_and_values_match(client, saved):
    table = client.dataset(saved).to_arrow()
    ds = qt.FlightDataset(client, saved, columns=["row_id", "conv_rate", "embedding", "trip_completed", "event_timestamp"],
                          batch_rows=10_000, fill_null={"conv_rate": float("nan")})
    items = list(ds)
    assert [len(b["row_id"]) for b in items[:-1]] == [10_000] * (len(items) - 1)
    assert sum(len(b["row_id"]) for b in items) == ROWS
    row_id = torch.cat([b["row_id"] for b in items])
    assert row_id.tolist() == table.column("row_id").to_pylist()
    conv = torch.cat([b["conv_rate"] for b in items]).tolist()
    want = [float("nan") if v is None else v for v in table.column("conv_rate").to_pylist()]
    assert [(a != a and b != b) or a == pytest.approx(b) for a, b in zip(conv, want)] == [True] * ROWS
    emb = torch.cat([b["embedding"] for b in items])
    assert emb.shape[0] == ROWS and emb.dim() == 2
    assert items[0]["trip_completed"].dtype == torch.bool
    assert items[0]["event_timestamp"].dtype == torch.int64
    ts = table.column("event_timestamp").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_pylist()
    assert torch.cat([b["event_timestamp"] for b in items]).tolist() == ts
    # drop_last leaves the short batch out.
    ds.drop_last = True
    assert sum(len(b["row_id"]) for b in ds) == ROWS - ROWS % 10_000


def test_tensors_view_arrow_memory(client, saved):
    batch = next(client.dataset(saved).batches())
    tensors = qt.to_tensors(batch, ["row_id", "driver_id"])
    for name in ("row_id", "driver_id"):
        arr = batch.column(batch.schema.get_field_index(name))
        data = arr.buffers()[1]
        assert tensors[name].data_ptr() == data.address + arr.offset * 8, f"{name} was copied"


def test_nulls_in_integer_columns_are_refused_or_filled():
    batch = pa.record_batch({"n": pa.array([1, None, 3], pa.int64()), "s": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="'n'.*1 nulls.*fill_null"):
        qt.to_tensors(batch, ["n"])
    assert qt.to_tensors(batch, ["n"], fill_null={"n": -1})["n"].tolist() == [1, -1, 3]
    # Columns without a tensor form are left out unless asked for.
    assert list(qt.to_tensors(batch, fill_null=0)) == ["n"]
    with pytest.raises(TypeError, match="'s'"):
        qt.to_tensors(batch, ["s"])
    with pytest.raises(KeyError, match="no column 'nope'"):
        qt.to_tensors(batch, ["nope"])


def test_loader_moves_to_the_device(client, saved):
    ds = qt.FlightDataset(client, saved, columns=["row_id"], batch_rows=50_000)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    items = list(qt.loader(ds, device=device))
    assert items and all(b["row_id"].device.type == device for b in items)


def test_a_replaced_set_is_aborted_until_refreshed(client, saved):
    path = "sets/torch-replaced.arrow"
    table = client.dataset(saved).to_arrow().select(["driver_id", "event_timestamp", "row_id"])
    client.save_training_set(table, path, features=FEATURES[:1], overwrite=True)
    ds = qt.FlightDataset(client, path, columns=["row_id"])
    client.save_training_set(table.slice(0, 100), path, features=FEATURES[:1], overwrite=True)
    with pytest.raises(quiver.QuiverError) as info:
        list(ds)
    assert info.value.code == "Aborted"
    ds.refresh()
    assert sum(len(b["row_id"]) for b in ds) == 100


def test_from_training_set(client, labels_path="driver_labels.parquet"):
    ds = qt.FlightDataset.from_training_set(client, labels_path, "sets/from-ts.arrow", features=FEATURES,
                                            overwrite=True, columns=["driver_id", "conv_rate"])
    assert ds.rows > 0 and sum(len(b["driver_id"]) for b in ds) == ds.rows


def test_train_example_runs(server, tmp_path):
    fl, _ = server
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / "train.py"), "--addr", fl,
                           "--token", TOKEN, "--epochs", "3", "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "accuracy" in proc.stdout, proc.stdout
