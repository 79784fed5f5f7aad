#!/usr/bin/env python3
"""The Python client in one page, against quiver serve on the quickstart.

    python tour.py --flight grpc://127.0.0.1:8815 --http http://127.0.0.1:6567

A training set built from an entity table in the server's data root and
from a table sent from here, one saved on the server and read back in its
parts, online features with their statuses, and a push. With torch
installed, the saved set is read into tensors by two DataLoader workers.
"""

import argparse
import datetime as dt

import pyarrow as pa

import quiver

FEATURES = ["driver_hourly:conv_rate", "driver_hourly:acc_rate"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flight", default="grpc://127.0.0.1:8815")
    p.add_argument("--http", default="http://127.0.0.1:6567")
    p.add_argument("--token", default=None)
    args = p.parse_args()
    client = quiver.Client(flight=args.flight, http=args.http, token=args.token)

    ts = client.training_set("driver_labels.parquet", features=FEATURES).to_arrow()
    print(f"training set over the data root's driver_labels.parquet: {ts.num_rows} rows, columns {ts.column_names}")

    now = dt.datetime.now(dt.timezone.utc)
    labels = pa.table({"driver_id": pa.array([1001, 1002, 9999], pa.int64()),
                       "event_timestamp": pa.array([now] * 3, pa.timestamp("us", tz="UTC"))})
    print("training set of a table sent from Python (Flight DoExchange):")
    for row in client.training_set(labels, features=FEATURES).to_arrow().to_pylist():
        print(f"  driver {row['driver_id']}: conv_rate {row['conv_rate']}, acc_rate {row['acc_rate']}")

    saved = client.save_training_set("driver_labels.parquet", "sets/tour.arrow", features=FEATURES, overwrite=True)
    parts = client.dataset_parts(saved.path)
    print(f"saved on the server: {saved}; {len(parts)} part(s) for parallel readers, "
          f"{parts.rows} rows in all")

    r = client.online_features(entities={"driver_id": [1001, 9999]}, features=FEATURES)
    print(f"online: {r.values} {r.statuses}")
    client.push("driver_app", [{"driver_id": 1001, "available": True, "battery": 0.8, "ts": now}])
    r = client.online_features(entities={"driver_id": [1001]}, features=["driver_status:battery"])
    print(f"after a push: {r.values} {r.statuses}")

    try:
        client.training_set("driver_labels.parquet", features=["driver_hourly:nope"])
    except quiver.QuiverError as e:
        print(f"a bad request raises QuiverError: {e}")

    try:
        import quiver.torch as qt
    except ImportError:
        print("(torch is not installed: the quiver.torch step is left out)")
        return
    ds = qt.FlightDataset(client, saved.path, columns=["driver_id", "conv_rate"], fill_null={"conv_rate": float("nan")})
    rows = sum(len(b["driver_id"]) for b in qt.loader(ds, num_workers=2))
    print(f"quiver.torch: {rows} rows into tensors by 2 DataLoader workers, each row once")
    client.close()


if __name__ == "__main__":
    main()
