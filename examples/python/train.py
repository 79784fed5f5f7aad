#!/usr/bin/env python3
"""Train a tiny PyTorch model on a Quiver training set fetched over Arrow Flight.

The training set comes from `quiver serve --flight` either with DoGet (a
ticket naming an entity table in the server's data root, the quickstart's
driver_labels.parquet by default) or with DoExchange (the entity table is
built here and streamed to the server). Each Arrow record batch of the
result becomes one mini-batch: float columns without nulls are viewed as
NumPy arrays and tensors without a copy, then moved to the GPU when there
is one. A logistic regression on conv_rate and acc_rate predicts
trip_completed.

Requirements: the quiver package (pip install ./python, which brings
pyarrow) and torch; numpy comes with torch.

    python train.py --addr grpc://127.0.0.1:8815
    python train.py --mode exchange --rows 100000
"""

import argparse
import random
import sys
import time
import warnings
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import torch

import quiver

# Arrow memory is immutable, so NumPy views of it are read-only; torch warns
# about that once. The tensors made from them are never written to.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

QUICKSTART_FEATURES = [
    "driver_hourly:conv_rate",
    "driver_hourly:acc_rate",
    "driver_hourly:avg_daily_trips",
    "driver_hourly:embedding",
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", default="grpc://127.0.0.1:8815", help="the Flight address of quiver serve")
    p.add_argument("--token", default=None, help="bearer token, when the server requires one")
    p.add_argument("--mode", choices=["get", "exchange", "dataset"], default="get",
                   help="get: DoGet on a ticket naming --entities in the server's data root; "
                        "exchange: DoExchange streaming an entity table built here; "
                        "dataset: DoGet of a saved training set (--dataset)")
    p.add_argument("--dataset", default="sets/train.arrow",
                   help="dataset: a training set saved in the server's data root "
                        "(quiver training-set --out data/sets/train.arrow)")
    p.add_argument("--entities", default="driver_labels.parquet",
                   help="DoGet: entity table (Parquet path or glob) within the server's data root")
    p.add_argument("--features", default=",".join(QUICKSTART_FEATURES), help="comma-separated feature references")
    p.add_argument("--inputs", default="conv_rate,acc_rate", help="feature columns the model reads")
    p.add_argument("--label", default="trip_completed", help="label column (bool)")
    p.add_argument("--rows", type=int, default=10_000, help="exchange: entity rows to send")
    p.add_argument("--drivers", type=int, default=100, help="exchange: driver ids 1001 … 1000+N")
    p.add_argument("--end", default=None,
                   help="exchange: latest event time (ISO 8601, UTC; default now); rows spread over the 72 hours before it")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    return p.parse_args()


def exchange_entities(args):
    """An entity table as a training job would send it: join key, event time
    and a label. The labels here are random placeholders for the job's own."""
    rng = np.random.default_rng(42)
    if args.end:
        end = datetime.fromisoformat(args.end.replace("Z", "+00:00"))
        if end.tzinfo is not None:
            end = end.astimezone(timezone.utc).replace(tzinfo=None)
    else:
        end = datetime.now(timezone.utc).replace(tzinfo=None)
    end_us = np.datetime64(end, "us")
    offsets = rng.integers(0, 72 * 3600 * 1_000_000, size=args.rows).astype("timedelta64[us]")
    return pa.table({
        "driver_id": pa.array(1001 + rng.integers(0, args.drivers, size=args.rows), pa.int64()),
        "event_timestamp": pa.array(end_us - offsets, pa.timestamp("us")),
        args.label: pa.array(rng.random(args.rows) < 0.5, pa.bool_()),
    })


def fetch(client, args):
    """The training set as an Arrow table (one chunk per record batch sent)."""
    features = [f for f in args.features.split(",") if f]
    if args.mode == "get":
        return client.training_set(args.entities, features=features).to_arrow()
    if args.mode == "dataset":
        return client.dataset(args.dataset).to_arrow()
    # The client streams the entity table to the server (DoExchange), which
    # reads it whole before it answers.
    return client.training_set(exchange_entities(args), features=features).to_arrow()


def numeric_tensor(arr):
    """A 1-D tensor of a numeric Arrow array: a view of the Arrow buffer when
    the array has no nulls, otherwise a float copy with NaN for nulls."""
    if arr.null_count == 0:
        return torch.from_numpy(arr.to_numpy(zero_copy_only=True)), True
    return torch.from_numpy(arr.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)), False


def bool_tensor(arr):
    """Booleans are bit-packed in Arrow, so they are always unpacked (a copy)."""
    return torch.from_numpy(arr.fill_null(False).to_numpy(zero_copy_only=False)), False


def list_dim(column):
    """The common length of a list column's non-null values, or None."""
    dims = set()
    for chunk in column.chunks:
        lengths = np.diff(chunk.offsets.to_numpy())
        valid = ~chunk.is_null().to_numpy(zero_copy_only=False)
        dims.update(np.unique(lengths[valid]).tolist())
    return dims.pop() if len(dims) == 1 else None


def list_tensor(arr, dim):
    """An (n, dim) tensor of a list<float> array: a view of the values buffer
    when nothing is null, otherwise a copy with NaN for nulls."""
    n = len(arr)
    flat = arr.flatten()  # the values of the non-null lists, offsets and slicing applied
    if arr.null_count == 0 and flat.null_count == 0:
        return torch.from_numpy(flat.to_numpy(zero_copy_only=True).reshape(n, dim)), True
    out = np.full((n, dim), np.nan, dtype=np.float32)
    valid = ~arr.is_null().to_numpy(zero_copy_only=False)
    out[valid] = flat.to_numpy(zero_copy_only=False).reshape(-1, dim)
    return torch.from_numpy(out), False


def to_tensors(table, columns, device):
    """One dict of column → tensor on device per record batch, and how many
    column chunks were converted without a copy out of how many."""
    dims = {c: list_dim(table.column(c)) for c in columns if pa.types.is_list(table.schema.field(c).type)}
    batches, views, total = [], 0, 0
    for batch in table.to_batches():
        out = {}
        for name in columns:
            arr = batch.column(name)
            t = arr.type
            if pa.types.is_floating(t) or pa.types.is_integer(t):
                tensor, view = numeric_tensor(arr)
            elif pa.types.is_boolean(t):
                tensor, view = bool_tensor(arr)
            elif pa.types.is_list(t) and pa.types.is_floating(t.value_type) and dims.get(name):
                tensor, view = list_tensor(arr, dims[name])
            else:
                continue  # timestamps, strings and the rest stay in Arrow
            views += view
            total += 1
            out[name] = tensor.to(device, non_blocking=True)
        batches.append(out)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batches, views, total


def train(batches, inputs, label, device, epochs, lr):
    model = torch.nn.Linear(len(inputs), 1).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    order = list(range(len(batches)))
    for epoch in range(epochs):
        random.shuffle(order)
        total, seen = 0.0, 0
        for i in order:
            b = batches[i]
            x = torch.stack([b[c].float() for c in inputs], dim=1)
            y = b[label].float()
            keep = ~torch.isnan(x).any(dim=1)  # rows without a feature value in the ttl are skipped
            if not bool(keep.any()):
                continue
            x, y = x[keep], y[keep]
            loss = loss_fn(model(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            seen += len(y)
        print(f"epoch {epoch + 1}: loss {total / max(seen, 1):.4f} over {seen} rows")
    with torch.no_grad():
        right = seen = 0
        for b in batches:
            x = torch.stack([b[c].float() for c in inputs], dim=1)
            keep = ~torch.isnan(x).any(dim=1)
            pred = model(x[keep]).squeeze(1) > 0
            right += int((pred == b[label][keep].bool()).sum())
            seen += int(keep.sum())
    print(f"accuracy {right / max(seen, 1):.3f} on {seen} rows; weights {model.weight.data.flatten().tolist()}")


def main():
    args = parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    inputs = [c for c in args.inputs.split(",") if c]
    client = quiver.Client(flight=args.addr, http=None, token=args.token)
    try:
        start = time.perf_counter()
        table = fetch(client, args)
        fetched = time.perf_counter()
    except quiver.QuiverError as e:  # "InvalidArgument: view driver_hourly has no feature ..."
        sys.exit(f"train.py: {args.mode}: {e}")
    finally:
        client.close()
    missing = [c for c in inputs + [args.label] if c not in table.column_names]
    if missing:
        sys.exit(f"train.py: the training set has no column {', '.join(missing)} (columns: {', '.join(table.column_names)})")
    batches, views, total = to_tensors(table, table.column_names, device)
    done = time.perf_counter()

    rows = table.num_rows
    print(f"{rows} rows × {table.num_columns} columns in {table.column(0).num_chunks} record batches "
          f"({table.nbytes / 2**20:.1f} MiB) over Flight {'DoGet' if args.mode == 'get' else 'DoExchange'} "
          f"in {fetched - start:.3f}s: {rows / (fetched - start):,.0f} rows/s")
    print(f"into tensors on {device} in {done - fetched:.3f}s ({views} of {total} column chunks without a copy); "
          f"end to end {rows / (done - start):,.0f} rows/s")
    if batches and batches[0]:
        shapes = ", ".join(f"{k} {str(v.dtype).removeprefix('torch.')}{list(v.shape)}" for k, v in batches[0].items())
        print(f"per batch: {shapes}")
    train(batches, inputs, args.label, device, args.epochs, args.lr)


if __name__ == "__main__":
    main()
