"""Feast's own client, unchanged, reads Quiver's training sets through
Feast's remote offline store.

A small Feast repository (a FileSource over Parquet) is applied with
`feast apply`, turned into a Quiver repository with `quiver import feast`,
applied with `quiver apply` and served with `quiver serve`. A Feast
FeatureStore whose feature_store.yaml says
`offline_store: {type: remote, host, port}` (the Flight port) then asks
for historical features; the answer must be Quiver's own training set for
the same entity rows (`quiver training-set`), column for column, and, for
these simple point-in-time cases, Feast's own answer from its file
offline store too.

Without Feast installed the tests skip, loudly; under CI=true they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import _unavailable, run_cli, serving

try:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as e:  # pragma: no cover - pandas and pyarrow come with the quiver package
    pd = pa = pq = None
    _import_error = e
else:
    _import_error = None

TOKEN = "feast-remote-token"
T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
FEATURES = ["driver_hourly:conv_rate", "driver_hourly:acc_rate", "driver_hourly:avg_daily_trips"]

REPO_PY = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Int64

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
driver_stats = FileSource(
    name="driver_stats",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
driver_hourly = FeatureView(
    name="driver_hourly",
    entities=[driver],
    ttl=timedelta(hours=2),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    online=True,
    source=driver_stats,
)
'''


def _feast():
    """The feast module and its CLI, or a loud skip (a failure under CI)."""
    if _import_error is not None:
        _unavailable(f"pandas/pyarrow are not importable: {_import_error}")
    try:
        import feast  # noqa: F401
    except ImportError as e:
        _unavailable(f"feast is not installed in {sys.executable} ({e}): Feast's remote offline store cannot be tested")
    cli = shutil.which("feast", path=str(Path(sys.executable).parent)) or shutil.which("feast")
    if cli is None:
        _unavailable("the feast command is not installed beside this Python")
    return cli


def _stats() -> "pd.DataFrame":
    """Hourly rows of drivers 1..3 over six hours, with a late correction
    (same event time, later created) for driver 1 at T0-1h."""
    rows = []
    for d in (1, 2, 3):
        for h in range(6):
            ts = T0 - timedelta(hours=h)
            rows.append({"driver_id": d, "event_timestamp": ts, "created": ts,
                         "conv_rate": d / 10 + h / 100, "acc_rate": 1 - d / 10, "avg_daily_trips": d * 100 + h})
    rows.append({"driver_id": 1, "event_timestamp": T0 - timedelta(hours=1), "created": T0,
                 "conv_rate": 0.99, "acc_rate": 0.5, "avg_daily_trips": 7})
    df = pd.DataFrame(rows)
    df["conv_rate"] = df["conv_rate"].astype("float32")
    df["acc_rate"] = df["acc_rate"].astype("float32")
    return df


def _entities() -> "pd.DataFrame":
    """Entity rows: present drivers at several times, one outside the ttl
    (T0-9h), one unknown driver, with a label that shows the order."""
    times = [T0, T0 - timedelta(minutes=30), T0 - timedelta(hours=1), T0 - timedelta(hours=9),
             T0 + timedelta(minutes=5), T0 - timedelta(hours=3, minutes=10), T0]
    drivers = [1, 2, 1, 3, 4, 2, 3]
    return pd.DataFrame({"driver_id": pd.array(drivers, dtype="int64"),
                         "event_timestamp": pd.to_datetime(times, utc=True),
                         "label": pd.array(range(len(drivers)), dtype="int64")})


@pytest.fixture(scope="module")
def feast_quiver(quiver_bin, tmp_path_factory):
    """The Feast repository applied, imported into Quiver and applied,
    served by `quiver serve` with a token: yields (feast repo, quiver repo,
    Flight port)."""
    cli = _feast()
    base = tmp_path_factory.mktemp("feast_remote")
    frepo = base / "feast_repo"
    (frepo / "data").mkdir(parents=True)
    _stats().to_parquet(frepo / "data" / "driver_stats.parquet", index=False)
    (frepo / "feature_store.yaml").write_text(
        "project: rides_feast\n"
        "registry: data/registry.db\n"
        "provider: local\n"
        "online_store: {type: sqlite, path: data/online.db}\n"
        "offline_store: {type: file}\n"
        "entity_key_serialization_version: 3\n")
    (frepo / "repo.py").write_text(REPO_PY)
    env = dict(os.environ, FEAST_USAGE="False")
    proc = subprocess.run([cli, "apply"], cwd=frepo, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"feast apply exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"

    qrepo = base / "quiver_repo"
    run_cli(quiver_bin, base, "import", "feast", "--registry", str(frepo / "data" / "registry.db"), "--out", str(qrepo))
    cfg = qrepo / "quiver.yaml"
    text = cfg.read_text()
    assert "\nserve:" not in text, "quiver import feast now writes a serve block; add auth_token to it"
    cfg.write_text(text + f"serve:\n  auth_token: {TOKEN}\n")
    run_cli(quiver_bin, qrepo, "apply", "--author", "pytest")
    _entities().to_parquet(qrepo / "entities.parquet", index=False)
    with serving(quiver_bin, qrepo) as (fl, _http):
        yield frepo, qrepo, int(fl.rsplit(":", 1)[1])


def _remote_store(base: Path, frepo: Path, port: int, auth: str):
    """A Feast FeatureStore over the same registry whose offline store is
    Quiver's Flight port."""
    from feast import FeatureStore

    base.mkdir(parents=True, exist_ok=True)
    (base / "feature_store.yaml").write_text(
        "project: rides_feast\n"
        f"registry: {frepo / 'data' / 'registry.db'}\n"
        "provider: local\n"
        f"online_store: {{type: sqlite, path: {base / 'online.db'}}}\n"
        f"offline_store: {{type: remote, host: 127.0.0.1, port: {port}}}\n"
        f"auth: {auth}\n"
        "entity_key_serialization_version: 3\n")
    return FeatureStore(repo_path=str(base))


def _quiver_training_set(quiver_bin, qrepo: Path, full: bool) -> "pd.DataFrame":
    out = qrepo / f"quiver-{'full' if full else 'short'}.parquet"
    args = ["training-set", "--entities", "entities.parquet", "--features", ",".join(FEATURES), "--out", str(out)]
    if full:
        args.append("--full-feature-names")
    run_cli(quiver_bin, qrepo, *args)
    return pq.read_table(out).to_pandas()


def _normal(df: "pd.DataFrame") -> "pd.DataFrame":
    """Timestamps as microsecond UTC (pandas writes nanoseconds), the
    index reset."""
    df = df.reset_index(drop=True).copy()
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            df[c] = pd.to_datetime(df[c], utc=True).astype("datetime64[us, UTC]")
    return df


@pytest.mark.parametrize("full", [False, True], ids=["feature names", "full feature names"])
def test_remote_offline_store_gets_quivers_training_set(feast_quiver, quiver_bin, tmp_path, full):
    frepo, qrepo, port = feast_quiver
    store = _remote_store(tmp_path / "client", frepo, port, f"{{type: kubernetes, user_token: {TOKEN}}}")
    job = store.get_historical_features(entity_df=_entities(), features=FEATURES, full_feature_names=full)
    got = job.to_df()
    table = job.to_arrow()  # a second call: a fresh command_id, the same answer
    assert table.column_names == list(got.columns)
    pd.testing.assert_frame_equal(table.to_pandas(), got)

    want = _quiver_training_set(quiver_bin, qrepo, full)
    names = ["conv_rate", "acc_rate", "avg_daily_trips"]
    if full:
        names = [f"driver_hourly__{n}" for n in names]
    assert list(got.columns) == ["driver_id", "event_timestamp", "label", *names]
    pd.testing.assert_frame_equal(_normal(got), _normal(want))
    # The unknown driver and the row outside the ttl have no features.
    assert got[names[0]].isna().tolist() == [False, False, False, True, True, False, False]

    # Feast's own file offline store agrees on the rows it returns. (It
    # drops the entity row whose view has no value within the ttl; Quiver
    # keeps one output row per entity row, with null features.)
    from feast import FeatureStore

    feast_own = FeatureStore(repo_path=str(frepo)).get_historical_features(
        entity_df=_entities(), features=FEATURES, full_feature_names=full).to_df()
    feast_own = _normal(feast_own.sort_values("label"))[list(got.columns)]
    assert set(feast_own["label"]) <= set(got["label"])
    assert len(feast_own) >= len(got) - 1
    ours = _normal(got[got["label"].isin(feast_own["label"])])
    pd.testing.assert_frame_equal(ours, feast_own, check_dtype=False)


def test_remote_offline_store_errors(feast_quiver, tmp_path):
    import pyarrow.flight as fl

    frepo, _qrepo, port = feast_quiver
    # Without a token (Feast's auth type no_auth sends no header).
    store = _remote_store(tmp_path / "noauth", frepo, port, "{type: no_auth}")
    with pytest.raises(fl.FlightUnauthenticatedError, match="bearer token"):
        store.get_historical_features(entity_df=_entities(), features=FEATURES).to_df()

    store = _remote_store(tmp_path / "auth", frepo, port, f"{{type: kubernetes, user_token: {TOKEN}}}")
    # An entity table given as SQL.
    with pytest.raises(Exception, match="entity_df given as SQL"):
        store.get_historical_features(entity_df="SELECT 1 AS driver_id", features=FEATURES).to_df()
    # Feast's timestamp-range retrieval, without an entity table.
    with pytest.raises(Exception, match="without an entity table"):
        store.get_historical_features(features=FEATURES, start_date=T0 - timedelta(hours=1), end_date=T0).to_df()
