"""Builds testdata/registry.db, the Feast file registry the import tests read.

Regenerate (from the repository root) with Feast 0.67.0 installed in a venv:

    python3 -m venv ~/.cache/quiver/venv-feast
    ~/.cache/quiver/venv-feast/bin/pip install 'feast[redis]==0.67.0'
    ~/.cache/quiver/venv-feast/bin/python internal/feast/testdata/make_registry.py
    go test -tags duckdb_arrow ./internal/feast/ -run TestGolden -update

The script writes a Feast repository into a temporary directory (the
definitions below, a feature_store.yaml with a file registry, a small
Parquet file per batch source), runs `feast apply` there and copies the
registry file it wrote to testdata/registry.db.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

FEATURE_STORE_YAML = """\
project: rides
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""

DEFINITIONS = '''\
from datetime import timedelta

import pandas as pd

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    KafkaSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.aggregation import Aggregation
from feast.data_format import JsonFormat
from feast.on_demand_feature_view import on_demand_feature_view
from feast.stream_feature_view import stream_feature_view
from feast.types import Array, Float32, Float64, Int64, String

driver = Entity(
    name="driver",
    join_keys=["driver_id"],
    value_type=ValueType.INT64,
    description="a driver of the fleet",
    owner="mobility@example.com",
    tags={"team": "mobility"},
)
rider = Entity(name="rider", join_keys=["rider_id"], value_type=ValueType.STRING)

driver_stats = FileSource(
    name="driver_stats",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    field_mapping={"conversion_rate": "conv_rate"},
    description="hourly driver statistics",
)
rider_history = FileSource(
    name="rider-history",
    path="/srv/feast/rider_history.parquet",
    timestamp_field="ts",
)
driver_push = PushSource(name="driver_push", batch_source=driver_stats)
trips = KafkaSource(
    name="trips",
    kafka_bootstrap_servers="broker-1:9092,broker-2:9092",
    topic="trips",
    timestamp_field="ts",
    message_format=JsonFormat(schema_json="driver_id integer, fare double, ts timestamp"),
    batch_source=FileSource(name="trips_batch", path="data/trips.parquet", timestamp_field="ts"),
    watermark_delay_threshold=timedelta(minutes=5),
)

driver_hourly = FeatureView(
    name="driver_hourly",
    entities=[driver],
    ttl=timedelta(hours=48),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float32, description="share of accepted offers"),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="embedding", dtype=Array(Float32)),
    ],
    online=True,
    source=driver_stats,
    tags={"team": "mobility", "tier": "1"},
    owner="mobility@example.com",
    description="driver statistics, hourly",
)
driver_lifetime = FeatureView(
    name="driver_lifetime",
    entities=[driver],
    ttl=timedelta(0),
    schema=[Field(name="lifetime_trips", dtype=Int64)],
    online=False,
    source=driver_stats,
)
driver_pushed = FeatureView(
    name="driver_pushed",
    entities=[driver],
    ttl=timedelta(minutes=30),
    schema=[Field(name="conv_rate", dtype=Float32)],
    source=driver_push,
)
rider_profile = FeatureView(
    name="rider_profile",
    entities=[rider],
    ttl=timedelta(days=7),
    schema=[Field(name="home_city", dtype=String), Field(name="lifetime_spend", dtype=Float64)],
    source=rider_history,
)


@stream_feature_view(
    entities=[driver],
    ttl=timedelta(days=1),
    mode="python",
    schema=[Field(name="fare", dtype=Float64)],
    timestamp_field="ts",
    online=True,
    source=trips,
    aggregations=[
        Aggregation(column="fare", function="sum", time_window=timedelta(hours=1)),
        Aggregation(column="fare", function="count", time_window=timedelta(days=1)),
        Aggregation(column="fare", function="mean", time_window=timedelta(hours=1)),
        Aggregation(column="fare", function="max", time_window=timedelta(hours=2),
                    slide_interval=timedelta(minutes=10)),
        Aggregation(column="fare", function="count_distinct", time_window=timedelta(hours=1)),
    ],
    tags={"team": "mobility"},
    owner="mobility@example.com",
    description="fares over sliding windows",
)
def driver_trips(df):
    return df


surge = RequestSource(name="surge_request", schema=[Field(name="surge", dtype=Float64)])


@on_demand_feature_view(
    sources=[driver_hourly, surge],
    schema=[Field(name="adjusted_conv", dtype=Float64), Field(name="is_busy", dtype=Int64)],
    mode="pandas",
    description="conversion adjusted for surge",
)
def driver_scores(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["adjusted_conv"] = inputs["conv_rate"] * inputs["surge"]
    out["is_busy"] = (inputs["avg_daily_trips"] > 10).astype("int64")
    return out


ranking_v1 = FeatureService(
    name="ranking_v1",
    features=[driver_hourly[["conv_rate", "acc_rate"]], driver_trips, driver_scores],
    owner="ranking@example.com",
    description="features of the ranking model",
)
ranking_v2 = FeatureService(
    name="ranking-v2",
    features=[driver_hourly.with_name("dh"), rider_profile],
)
'''


def main():
    import pandas as pd

    tmp = tempfile.mkdtemp(prefix="feast-fixture-")
    try:
        repo = os.path.join(tmp, "rides")
        os.makedirs(os.path.join(repo, "data"))
        with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
            f.write(FEATURE_STORE_YAML)
        with open(os.path.join(repo, "definitions.py"), "w") as f:
            f.write(DEFINITIONS)
        ts = pd.Timestamp("2026-01-01T00:00:00Z")
        pd.DataFrame({
            "driver_id": [1001], "event_timestamp": [ts], "created": [ts],
            "conversion_rate": [0.5], "acc_rate": [0.9], "avg_daily_trips": [12],
            "embedding": [[0.1, 0.2]], "lifetime_trips": [300],
        }).to_parquet(os.path.join(repo, "data", "driver_stats.parquet"))
        pd.DataFrame({"driver_id": [1001], "fare": [9.5], "ts": [ts]}).to_parquet(
            os.path.join(repo, "data", "trips.parquet"))
        feast = os.path.join(os.path.dirname(sys.executable), "feast")
        subprocess.run([feast, "apply"], cwd=repo, check=True)
        shutil.copyfile(os.path.join(repo, "data", "registry.db"), os.path.join(HERE, "registry.db"))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
