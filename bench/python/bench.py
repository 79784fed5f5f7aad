#!/usr/bin/env python3
"""Rows per second from a saved training set into torch tensors.

One run, one machine, the same saved set read four ways:

- sdk: quiver.torch.FlightDataset in this process (Flight DoGet of each
  part of the set, each record batch into tensors);
- sdk, 2 workers: the same through a DataLoader with two worker processes
  (spawned), once with the workers already started (persistent), once
  with their start counted;
- raw flight: pyarrow.flight DoGet of the whole set with a hand-written
  ticket, each batch into tensors the same way (the reference: the SDK's
  target is at least 90% of it);
- local parquet: pyarrow.parquet reading the same rows saved as Parquet
  from the local disk, into tensors the same way.

The set is built first by the server (save_training_set over an uploaded
entity table of --rows rows against the quickstart); that preparation is
reported on its own line. Each case is read once to warm up, then the
cases run in turn --repeat times; the best run of each is reported.

    python bench/python/bench.py --quiver-bin bin/quiver [--rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "python" / "tests"))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.flight as flight  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

import quiver  # noqa: E402
import quiver.torch as qt  # noqa: E402
from conftest import scaffold, serving  # noqa: E402

FEATURES = ["driver_hourly:conv_rate", "driver_hourly:acc_rate", "driver_hourly:avg_daily_trips",
            "driver_hourly:embedding"]
COLUMNS = ["row_id", "driver_id", "conv_rate", "acc_rate", "avg_daily_trips", "embedding", "trip_completed"]
FILL = {"conv_rate": float("nan"), "acc_rate": float("nan"), "avg_daily_trips": 0}


def entities(n: int) -> pa.Table:
    rng = np.random.default_rng(1)
    now = np.datetime64(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), "us")
    return pa.table({
        "row_id": pa.array(np.arange(n, dtype=np.int64)),
        "driver_id": pa.array(1001 + rng.integers(0, 100, n), pa.int64()),
        "event_timestamp": pa.array(now - rng.integers(0, 72 * 3600 * 10**6, n).astype("timedelta64[us]"),
                                    pa.timestamp("us", tz="UTC")),
        "trip_completed": pa.array(rng.random(n) < 0.5),
    })


def consume(tensors: dict) -> int:
    return len(tensors["row_id"])


def best(fn, repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t0)
    return min(times), rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quiver-bin", default=str(HERE.parents[1] / "bin" / "quiver"))
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    args.quiver_bin = str(Path(args.quiver_bin).resolve())

    with tempfile.TemporaryDirectory() as tmp:
        repo = scaffold(args.quiver_bin, Path(tmp), "")
        with serving(args.quiver_bin, repo) as (fl, http):
            client = quiver.Client(flight=f"grpc://{fl}", http=f"http://{http}")
            ents = entities(args.rows)
            t0 = time.perf_counter()
            saved = client.save_training_set(ents, "sets/bench.arrow", features=FEATURES, overwrite=True)
            build = time.perf_counter() - t0
            client.save_training_set(ents, "sets/bench.parquet", features=FEATURES, overwrite=True)
            local = repo / "data" / "sets" / "bench.parquet"
            ds = qt.FlightDataset(client, "sets/bench.arrow", columns=COLUMNS, fill_null=FILL)

            def sdk():
                return sum(consume(t) for t in ds)

            def sdk_workers():
                return sum(consume(t) for t in qt.loader(ds, num_workers=2))

            persistent = qt.loader(ds, num_workers=2, persistent_workers=True)
            sum(consume(t) for t in persistent)  # the workers start here

            def sdk_workers_started():
                return sum(consume(t) for t in persistent)

            ticket = flight.Ticket(json.dumps({"kind": "dataset", "path": "sets/bench.arrow"}).encode())
            raw_client = flight.FlightClient(f"grpc://{fl}")

            def raw():
                reader = raw_client.do_get(ticket)
                n = 0
                for chunk in reader:
                    n += consume(qt.to_tensors(chunk.data, COLUMNS, FILL))
                return n

            def raw_arrow():
                return raw_client.do_get(ticket).read_all().num_rows

            def parquet():
                n = 0
                for b in pq.ParquetFile(local).iter_batches(batch_size=65536, columns=COLUMNS):
                    n += consume(qt.to_tensors(b, COLUMNS, FILL))
                return n

            cases = [("sdk: FlightDataset → tensors", sdk),
                     ("sdk: 2 DataLoader workers, started → tensors", sdk_workers_started),
                     ("sdk: 2 DataLoader workers, with their start → tensors", sdk_workers),
                     ("raw pyarrow.flight DoGet → tensors", raw),
                     ("raw pyarrow.flight DoGet → Arrow table (no tensors)", raw_arrow),
                     ("local pyarrow.parquet → tensors", parquet)]
            for _, fn in cases:
                fn()  # warm: connections, the page cache
            # Round robin, so that a slow moment of the machine hits every case.
            secs = {name: [] for name, _ in cases}
            for _ in range(args.repeat):
                for name, fn in cases:
                    t0 = time.perf_counter()
                    rows = fn()
                    secs[name].append(time.perf_counter() - t0)
                    if rows != saved.rows:
                        sys.exit(f"{name}: read {rows} rows of {saved.rows}")
            results = {name: saved.rows / min(s) for name, s in secs.items()}
            del persistent
            raw_client.close()
            client.close()

    ref = results["raw pyarrow.flight DoGet → tensors"]
    print(f"saved set: {saved.rows:,} rows, {saved.bytes / 2**20:.0f} MiB, {len(ds.parts)} parts; "
          f"built by the server in {build:.2f}s (preparation, not counted below)")
    print(f"torch {torch.__version__}, pyarrow {pa.__version__}, numpy {np.__version__}; best of {args.repeat}")
    print(f"{'case':<55} {'rows/s':>14} {'vs raw flight':>14}")
    for name, rate in results.items():
        print(f"{name:<55} {rate:>14,.0f} {rate / ref:>13.2f}×")
    sdk_ratio = results["sdk: FlightDataset → tensors"] / ref
    print(f"sdk / raw pyarrow.flight: {sdk_ratio:.2f} (target ≥ 0.90)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": saved.rows, "rows_per_s": results, "sdk_ratio": sdk_ratio}, indent=2))


if __name__ == "__main__":
    main()
