#!/usr/bin/env python3
"""Train a small PyTorch model on a Quiver training set, read over Arrow Flight.

The server builds the point-in-time training set once and saves it in its
data root (Client.save_training_set); quiver.torch.FlightDataset then reads
it each epoch, split between DataLoader workers so that every row is read
once, each record batch turned into tensors without a copy where Arrow
allows. A logistic regression on conv_rate and acc_rate predicts
trip_completed, on the CPU or the GPU when there is one.

Requirements: the quiver package (pip install ./python) and torch.

    quiver serve                       # in the quickstart (quiver init rides)
    python train.py --addr grpc://127.0.0.1:8815 --workers 2
"""

import argparse
import sys
import time

import torch

import quiver
import quiver.torch as qt

QUICKSTART_FEATURES = ["driver_hourly:conv_rate", "driver_hourly:acc_rate", "driver_hourly:avg_daily_trips"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", default="grpc://127.0.0.1:8815", help="the Flight address of quiver serve")
    p.add_argument("--token", default=None, help="bearer token, when the server requires one")
    p.add_argument("--entities", default="driver_labels.parquet",
                   help="entity table (Parquet path or glob) within the server's data root")
    p.add_argument("--dataset", default="sets/train.arrow", help="where the server saves the training set, within its data root")
    p.add_argument("--features", default=",".join(QUICKSTART_FEATURES), help="comma-separated feature references")
    p.add_argument("--inputs", default="conv_rate,acc_rate", help="feature columns the model reads")
    p.add_argument("--label", default="trip_completed", help="label column (bool)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--batch-rows", type=int, default=256, help="rows per mini-batch")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    return p.parse_args()


def main():
    args = parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    inputs = [c for c in args.inputs.split(",") if c]
    client = quiver.Client(flight=args.addr, http=None, token=args.token)
    try:
        start = time.perf_counter()
        saved = client.save_training_set(args.entities, args.dataset, features=[f for f in args.features.split(",") if f],
                                         overwrite=True)
        print(f"saved {saved.rows} rows ({saved.bytes / 2**20:.1f} MiB) at {saved.path} in {time.perf_counter() - start:.2f}s")
        # Rows whose features are missing (no value within the ttl) are null:
        # NaN here, skipped in training.
        ds = qt.FlightDataset(client, saved.path, columns=inputs + [args.label], batch_rows=args.batch_rows,
                              shuffle=True, fill_null={c: float("nan") for c in inputs})
    except quiver.QuiverError as e:  # "InvalidArgument: view driver_hourly has no feature ..."
        sys.exit(f"train.py: {e}")
    print(f"{len(ds.parts)} parts, read by {max(args.workers, 1)} reader(s) on {device}")

    model = torch.nn.Linear(len(inputs), 1).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for epoch in range(args.epochs):
        ds.set_epoch(epoch)
        t0 = time.perf_counter()
        total, seen, right = 0.0, 0, 0
        for batch in qt.loader(ds, num_workers=args.workers, device=device):
            x = torch.stack([batch[c].float() for c in inputs], dim=1)
            y = batch[args.label].float()
            keep = ~torch.isnan(x).any(dim=1)
            if not bool(keep.any()):
                continue
            x, y = x[keep], y[keep]
            logits = model(x).squeeze(1)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            seen += len(y)
            right += int(((logits > 0) == y.bool()).sum())
        took = time.perf_counter() - t0
        print(f"epoch {epoch + 1}: loss {total / max(seen, 1):.4f}, accuracy {right / max(seen, 1):.3f} "
              f"over {seen} rows in {took:.2f}s")
    if seen == 0:
        sys.exit("train.py: no row had every input feature; nothing was trained")
    print(f"accuracy {right / seen:.3f}; weights {model.weight.data.flatten().tolist()}")
    client.close()


if __name__ == "__main__":
    main()
