"""Feast beside Quiver on the same generated data and the same redis-server.

    make bench-feast                      # or:
    python bench/feast/bench.py --quiver-bin bin/quiver [--quick] [--sizes 10000:100000,...]

One run builds a Feast repository (file offline store, Redis online store)
and the Quiver repository `quiver import feast` makes from its registry,
over the same Parquet files, then measures, each side in a subprocess of
its own (wall time, and peak RSS from wait4, through measure.py):

- training sets: Feast's get_historical_features (the file/Dask offline
  store) against `quiver training-set`, for E entity rows × 3 views × R rows
  per view, at growing sizes; a Feast run is stopped at --feast-timeout
  seconds or --feast-memory GiB, and the largest size it finished is the
  one compared;
- materialization of a view of 50 features into Redis: `feast materialize`
  against `quiver materialize` (Quiver into db 1 of the same server);
- online lookups over HTTP, 1×50 and 100×50 features: `feast serve` (POST
  /get-online-features) against `quiver serve` (POST /v1/online-features,
  or /get-online-features when the server has it), with the same client
  loop: one keep-alive connection, sequential requests.

It prints a table: case, Feast, Quiver, Feast ÷ Quiver (above 1: Quiver takes less
time or memory; below 1 on a rate: Quiver is faster).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

VIEWS = 3
WIDE = 50          # features of the online view
DAYS = 30          # span of the training data's event times
TTL_DAYS = 7
BASE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
TS = pa.timestamp("us", tz="UTC")
MEASURE = Path(__file__).resolve().with_name("measure.py")

FEATURE_STORE_YAML = """\
project: bench
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "127.0.0.1:{port},db=0"
offline_store:
  type: file
entity_key_serialization_version: 3
"""


# ---------------------------------------------------------------- data

def training_data(root: Path, entities: int, rows: int) -> tuple[str, list[str]]:
    """VIEWS sources of rows rows each over rows/10 drivers (ten rows per
    driver, hours apart, with created times) and an entity table of
    entities rows; returns the size's tag and its feature references."""
    tag = f"e{entities}_r{rows}"
    d = root / "data" / tag
    if (d / "done").exists():
        return tag, _refs(tag)
    d.mkdir(parents=True, exist_ok=True)
    keys = max(rows // 10, 1)
    rng = np.random.default_rng(rows)
    span = DAYS * 86400 * 10**6
    base = int(BASE.timestamp() * 10**6)
    for v in range(VIEWS):
        ts = base + rng.integers(0, span, rows)
        t = pa.table({
            "driver_id": pa.array(np.arange(rows) % keys, pa.int64()),
            "event_timestamp": pa.array(ts, TS),
            "created": pa.array(ts + 60 * 10**6, TS),
            f"v{v}_f1": pa.array(rng.random(rows, dtype=np.float32)),
            f"v{v}_f2": pa.array(rng.integers(0, 1000, rows), pa.int64()),
            f"v{v}_f3": pa.array(rng.random(rows)),
        })
        pq.write_table(t, d / f"view{v}.parquet", row_group_size=1 << 20)
    pq.write_table(pa.table({
        "driver_id": pa.array(rng.integers(0, keys, entities), pa.int64()),
        "event_timestamp": pa.array(base + rng.integers(0, span, entities), TS),
        "label": pa.array(rng.integers(0, 2, entities), pa.int64()),
    }), d / "entities.parquet")
    (d / "done").touch()
    return tag, _refs(tag)


def _refs(tag: str) -> list[str]:
    return [f"{tag}_v{v}:v{v}_f{k}" for v in range(VIEWS) for k in (1, 2, 3)]


def wide_data(root: Path, entities: int) -> None:
    """The online view's source: two rows per driver (the later one is
    materialized), WIDE float32 features."""
    d = root / "data" / "wide"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    n = 2 * entities
    ts = int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)).timestamp() * 10**6)
    cols = {"driver_id": pa.array(np.arange(n) % entities, pa.int64()),
            "event_timestamp": pa.array(ts + (np.arange(n) // entities) * 3600 * 10**6, TS)}
    for k in range(WIDE):
        cols[f"f{k:02d}"] = pa.array(rng.random(n, dtype=np.float32))
    pq.write_table(pa.table(cols), d / "wide.parquet")


def definitions(tags: list[str]) -> str:
    out = ["from datetime import timedelta",
           "from feast import Entity, FeatureView, Field, FileSource, ValueType",
           "from feast.types import Float32, Float64, Int64",
           'driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)']
    for tag in tags:
        for v in range(VIEWS):
            out.append(f'''
FeatureView(name="{tag}_v{v}", entities=[driver], ttl=timedelta(days={TTL_DAYS}), online=False,
    schema=[Field(name="driver_id", dtype=Int64), Field(name="v{v}_f1", dtype=Float32),
            Field(name="v{v}_f2", dtype=Int64), Field(name="v{v}_f3", dtype=Float64)],
    source=FileSource(name="{tag}_src{v}", path="data/{tag}/view{v}.parquet",
                      timestamp_field="event_timestamp", created_timestamp_column="created"))''')
    fields = ", ".join(f'Field(name="f{k:02d}", dtype=Float32)' for k in range(WIDE))
    out.append(f'''
wide = FeatureView(name="wide", entities=[driver], ttl=timedelta(0), online=True,
    schema=[Field(name="driver_id", dtype=Int64), {fields}],
    source=FileSource(name="wide_src", path="data/wide/wide.parquet", timestamp_field="event_timestamp"))''')
    # feast apply registers the objects it finds as module globals.
    src = "\n".join(out)
    return re.sub(r"^FeatureView\(name=\"(\w+)\"", r'\1 = FeatureView(name="\1"', src, flags=re.M)


# ---------------------------------------------------------------- processes

class Result:
    def __init__(self, wall: float, rss: int, ok: bool, why: str = "", out: str = ""):
        self.wall, self.rss, self.ok, self.why, self.out = wall, rss, ok, why, out


def measure(cmd: list[str], cwd: Path, timeout: float, mem_gib: float) -> Result:
    """Runs cmd through measure.py: stopped past timeout seconds or
    mem_gib of RSS; its peak RSS is the kernel's (wait4's ru_maxrss)."""
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        p = subprocess.run([sys.executable, str(MEASURE), str(timeout), str(mem_gib), log.name, "--", *cmd],
                           cwd=cwd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"measure.py exited {p.returncode}: {p.stderr}")
        m = json.loads(p.stdout.strip().splitlines()[-1])
        out = Path(log.name).read_text(errors="replace")
    why = m["why"] or (f"exited {m['code']}: {out[-2000:]}" if m["code"] != 0 else "")
    return Result(m["wall"], m["rss"], not why, why, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} not ready in {seconds:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- cases

def feast_train_child(repo: str, entities: str, out: str, refs: str) -> None:
    """The Feast side of a training-set case, in a process of its own."""
    import pandas as pd
    from feast import FeatureStore
    store = FeatureStore(repo_path=repo)
    t = store.get_historical_features(entity_df=pd.read_parquet(entities), features=refs.split(",")).to_arrow()
    pq.write_table(t, out)
    print(t.num_rows)


def post_loop(port: int, path: str, body: bytes, n: int, check) -> list[float]:
    """n sequential POSTs on one keep-alive connection after a warm-up;
    the latency of each, in seconds."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    lat = []
    for i in range(n + n // 10):
        t0 = time.perf_counter()
        c.request("POST", path, body, headers)
        r = c.getresponse()
        data = r.read()
        t1 = time.perf_counter()
        if r.status != 200:
            raise SystemExit(f"POST {path} on port {port}: {r.status} {data[:300]!r}")
        if i == 0:
            check(json.loads(data))
        if i >= n // 10:
            lat.append(t1 - t0)
    c.close()
    return lat


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def fmt_s(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def fmt_us(s: float) -> str:
    return f"{s * 1e6:,.0f} µs"


def fmt_b(b: int) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_feast_train":
        feast_train_child(*sys.argv[2:6])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quiver-bin", required=True)
    ap.add_argument("--sizes", default="10000:100000,100000:1000000,1000000:10000000",
                    help="training-set sizes, ENTITY_ROWS:ROWS_PER_VIEW, comma-separated, growing")
    ap.add_argument("--wide-entities", type=int, default=50_000, help="entities of the 50-feature online view")
    ap.add_argument("--requests", type=int, default=2000, help="online requests per 1×50 case (100×50: a fifth)")
    ap.add_argument("--feast-timeout", type=float, default=120, help="seconds before a Feast training run is stopped")
    ap.add_argument("--feast-memory", type=float, default=8, help="GiB of RSS at which a Feast training run is stopped")
    ap.add_argument("--runs", type=int, default=1, help="runs per training-set case (the median is shown)")
    ap.add_argument("--dir", help="work directory (default: a new temporary one, removed at the end)")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a check that it runs")
    a = ap.parse_args()
    if a.quick:
        a.sizes, a.wide_entities, a.requests = "10000:100000", 5000, 300
    sizes = [tuple(int(x) for x in s.split(":")) for s in a.sizes.split(",")]
    quiver = os.path.abspath(a.quiver_bin)
    feast_cli = str(Path(sys.executable).parent / "feast")
    redis = shutil.which("redis-server")
    if not os.access(feast_cli, os.X_OK) or redis is None:
        raise SystemExit(f"needs the feast command beside {sys.executable} and redis-server on PATH")
    import feast
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="bench-feast-"))
    rport = free_port()
    rproc = subprocess.Popen([redis, "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(work)], stdout=subprocess.DEVNULL)
    procs = [rproc]
    rows = []
    try:
        fr = work / "feast"
        (fr / "data").mkdir(parents=True, exist_ok=True)
        (fr / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(port=rport))
        t0 = time.monotonic()
        tags = [training_data(fr, e, r) for e, r in sizes]
        wide_data(fr, a.wide_entities)
        print(f"generated the data in {time.monotonic() - t0:.0f} s under {work}", file=sys.stderr)
        (fr / "definitions.py").write_text(definitions([t for t, _ in tags]))
        subprocess.run([feast_cli, "apply"], cwd=fr, check=True, capture_output=True)
        qr = work / "quiver"
        if qr.exists():
            shutil.rmtree(qr)
        subprocess.run([quiver, "import", "feast", "--registry", str(fr / "data" / "registry.db"), "--out", str(qr)],
                       check=True, capture_output=True)
        cfg = qr / "quiver.yaml"
        cfg.write_text(re.sub(r"^  type: embedded\n  path: \.quiver/online\n",
                              f"  type: redis\n  addr: 127.0.0.1:{rport}\n  db: 1\n", cfg.read_text(), flags=re.M))
        subprocess.run([quiver, "apply", "--author", "bench"], cwd=qr, check=True, capture_output=True)

        # Training sets, growing; Feast stops at the first size it cannot finish.
        feast_ok = True
        for (tag, refs), (e, r) in zip(tags, sizes):
            ent = str(fr / "data" / tag / "entities.parquet")
            case = f"training set {e:,} × {VIEWS} views × {r:,} rows"
            qs = [measure([quiver, "training-set", "--entities", ent, "--features", ",".join(refs),
                           "--out", str(work / "q.parquet")], qr, 1800, 1e9) for _ in range(a.runs)]
            for q in qs:
                if not q.ok:
                    raise SystemExit(f"quiver training-set, {case}: {q.why}")
            q = sorted(qs, key=lambda x: x.wall)[len(qs) // 2]
            if feast_ok:
                fs = [measure([sys.executable, __file__, "_feast_train", str(fr), ent, str(work / "f.parquet"),
                               ",".join(refs)], fr, a.feast_timeout, a.feast_memory) for _ in range(a.runs)]
                f = sorted(fs, key=lambda x: x.wall)[len(fs) // 2]
                if f.ok:
                    frows = int(f.out.strip().splitlines()[-1])
                    rows.append((case, fmt_s(f.wall), fmt_s(q.wall), f"{f.wall / q.wall:.1f}×"))
                    rows.append((f"  peak RSS", fmt_b(f.rss), fmt_b(q.rss), f"{f.rss / q.rss:.1f}×"))
                    rows.append((f"  rows out (of {e:,})", f"{frows:,}", f"{e:,}", ""))
                else:
                    feast_ok = False
                    rows.append((case, f"did not finish: {f.why} (peak {fmt_b(f.rss)})", fmt_s(q.wall), ""))
                    rows.append((f"  peak RSS", "", fmt_b(q.rss), ""))
            else:
                rows.append((case, "not run (a smaller size did not finish)", fmt_s(q.wall), ""))
                rows.append((f"  peak RSS", "", fmt_b(q.rss), ""))
            print(*rows[-3:], sep="\n", file=sys.stderr)

        # Materialization of the 50-feature view, into db 0 (Feast) and db 1 (Quiver).
        start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
        end = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        f = measure([feast_cli, "materialize", "-v", "wide", start, end], fr, 3600, 1e9)
        q = measure([quiver, "materialize", "--views", "wide", "--start", start + "Z", "--end", end + "Z"], qr, 3600, 1e9)
        for side, res in (("feast materialize", f), ("quiver materialize", q)):
            if not res.ok:
                raise SystemExit(f"{side}: {res.why}")
        n = a.wide_entities
        rows.append((f"materialize {n:,} entities × {WIDE} features → Redis", f"{n / f.wall:,.0f} rows/s",
                     f"{n / q.wall:,.0f} rows/s", f"{q.wall / f.wall:.2f}×"))
        rows.append(("  wall time", fmt_s(f.wall), fmt_s(q.wall), f"{f.wall / q.wall:.1f}×"))
        rows.append(("  peak RSS", fmt_b(f.rss), fmt_b(q.rss), f"{f.rss / q.rss:.1f}×"))
        print(*rows[-3:], sep="\n", file=sys.stderr)

        # Online: feast serve against quiver serve.
        fport, qport = free_port(), free_port()
        fserve = subprocess.Popen([feast_cli, "serve", "-h", "127.0.0.1", "-p", str(fport), "--no-access-log"],
                                  cwd=fr, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(fserve)
        qserve = subprocess.Popen([quiver, "serve", "--grpc", "off", "--http", f"127.0.0.1:{qport}",
                                   "--flight", f"127.0.0.1:{free_port()}"], cwd=qr,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(qserve)
        wait_http(fport, "/health", fserve)
        wait_http(qport, "/readyz", qserve)
        c = http.client.HTTPConnection("127.0.0.1", qport, timeout=5)
        c.request("POST", "/get-online-features", b"{}", {"Content-Type": "application/json"})
        qpath = "/v1/online-features" if c.getresponse().status == 404 else "/get-online-features"
        c.close()
        feats = [f"wide:f{k:02d}" for k in range(WIDE)]
        rng = np.random.default_rng(1)
        for batch, n in ((1, a.requests), (100, max(a.requests // 5, 50))):
            ids = [int(x) for x in rng.integers(0, a.wide_entities, batch)]
            fbody = json.dumps({"features": feats, "entities": {"driver_id": ids}}).encode()
            qbody = fbody if qpath == "/get-online-features" else \
                json.dumps({"entities": {"driver_id": ids}, "features": feats}).encode()

            def fcheck(doc):
                vals = doc["results"][1]["values"]
                assert len(vals) == batch and all(v is not None for v in vals), doc["results"][1]

            def qcheck(doc):
                if qpath != "/v1/online-features":
                    return fcheck(doc)
                st = doc["features"][0]["statuses"]
                assert len(st) == batch and set(st) == {"PRESENT"}, st

            fl = post_loop(fport, "/get-online-features", fbody, n, fcheck)
            ql = post_loop(qport, qpath, qbody, n, qcheck)
            case = f"online {batch}×{WIDE} over HTTP"
            rows.append((f"{case} p50", fmt_us(statistics.median(fl)), fmt_us(statistics.median(ql)),
                         f"{statistics.median(fl) / statistics.median(ql):.1f}×"))
            rows.append((f"  p99", fmt_us(pct(fl, 0.99)), fmt_us(pct(ql, 0.99)), f"{pct(fl, 0.99) / pct(ql, 0.99):.1f}×"))
            rows.append((f"  throughput, one connection", f"{len(fl) / sum(fl):,.0f}/s", f"{len(ql) / sum(ql):,.0f}/s",
                         f"{(len(fl) / sum(fl)) / (len(ql) / sum(ql)):.2f}×"))
            print(*rows[-3:], sep="\n", file=sys.stderr)
    finally:
        for p in reversed(procs):
            stop(p)
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)

    out = subprocess.run([quiver, "version"], capture_output=True, text=True).stdout.strip()
    print(f"\nFeast {feast.__version__} (file offline store, Redis online store, feast serve with 1 worker) "
          f"beside {out.replace('quiver', 'Quiver', 1) or 'Quiver'}; redis-server {subprocess.run([redis, '--version'], capture_output=True, text=True).stdout.split()[2]}; "
          f"{os.cpu_count()} CPUs; Quiver's online path: POST {qpath}\n")
    w = [max(len(r[i]) for r in rows + [("case", "Feast", "Quiver", "Feast ÷ Quiver")]) for i in range(4)]
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(("case", "Feast", "Quiver", "Feast ÷ Quiver"))) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")


if __name__ == "__main__":
    main()
