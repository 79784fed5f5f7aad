"""A Feast repository and the same data for Quiver, built in a directory.

The data is small and every row is there for a reason: hourly driver
statistics with exact ties on event time (one broken by the created
timestamp, one not), a driver whose rows stop long before the entity rows
(past the ttl), a profile view with no ttl, an on-demand view and a feature
service. Times are relative to now, so the latest rows are minutes old and
online lookups see them inside the ttl.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DRIVERS = list(range(1001, 1011))
HOURS = 48
TTL = dt.timedelta(hours=2)
STALE_DRIVER = 1003      # its statistics stop at hour STALE_LAST
STALE_LAST = 20
CREATED_TIE = (1001, 30)  # (driver, hour): two rows, the later created wins
FULL_TIE = (1002, 30)     # two rows with equal event and created time
ONLINE_TIE = (1002, HOURS - 1)  # the same, at the latest hour
ONLINE_CREATED_TIE = (1004, HOURS - 1)  # a created-time tie at the latest hour
TIE_A, TIE_B = 0.25, 0.75  # conv_rate of the two fully tied rows, in file order
LATE_CREATED = 0.999        # conv_rate of the later-created row of a created-time tie
DUPLICATE = (1006, 12)    # an entity row given twice
LATE = (1008, 40)         # a row created three hours after its event time

FEATURE_STORE_YAML = """\
project: fleet
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "127.0.0.1:{port},db=0"
offline_store:
  type: file
entity_key_serialization_version: 3
"""

DEFINITIONS = '''\
from datetime import timedelta

import pandas as pd

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float32, Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats = FileSource(
    name="driver_stats",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
driver_profiles = FileSource(
    name="driver_profiles",
    path="data/driver_profiles.parquet",
    timestamp_field="event_timestamp",
)

driver_hourly = FeatureView(
    name="driver_hourly",
    entities=[driver],
    ttl=timedelta(seconds=%(ttl)d),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="embedding", dtype=Array(Float32)),
    ],
    online=True,
    source=driver_stats,
)
driver_profile = FeatureView(
    name="driver_profile",
    entities=[driver],
    ttl=timedelta(0),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="home_city", dtype=String),
        Field(name="rating", dtype=Float64),
    ],
    online=True,
    source=driver_profiles,
)


@on_demand_feature_view(
    sources=[driver_hourly],
    schema=[Field(name="conv_x_acc", dtype=Float64)],
    mode="pandas",
)
def driver_scores(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["conv_x_acc"] = inputs["conv_rate"].astype("float64") * inputs["acc_rate"].astype("float64")
    return out


ranking = FeatureService(
    name="ranking",
    features=[driver_hourly[["conv_rate", "acc_rate"]], driver_profile, driver_scores],
)
'''

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")


def end_time(now: dt.datetime | None = None) -> dt.datetime:
    """The event time of the latest hourly row: five minutes before now,
    to the minute."""
    now = now or dt.datetime.now(UTC)
    return now.replace(second=0, microsecond=0) - dt.timedelta(minutes=5)


def hour(end: dt.datetime, h: int) -> dt.datetime:
    """The event time of hour h (0 … HOURS-1; HOURS-1 is end)."""
    return end - dt.timedelta(hours=HOURS - 1 - h)


def conv(d: int, h: int) -> float:
    """conv_rate of driver d at hour h (but for the tied rows)."""
    return round(0.001 * (d - 1000) + 0.01 * h, 4)


def stats_table(end: dt.datetime) -> pa.Table:
    rows = []
    for d in DRIVERS:
        for h in range(HOURS):
            if d == STALE_DRIVER and h > STALE_LAST:
                continue
            ts = hour(end, h)
            row = dict(driver_id=d, event_timestamp=ts, created=ts + dt.timedelta(minutes=1),
                       conv_rate=conv(d, h), acc_rate=round(0.5 + 0.001 * h, 4),
                       avg_daily_trips=d - 1000 + h, embedding=[float(d - 1000), float(h)])
            if (d, h) in (CREATED_TIE, ONLINE_CREATED_TIE):
                # First in file order, created later: wins on created time
                # although the other row comes last.
                rows.append(dict(row, created=ts + dt.timedelta(minutes=30), conv_rate=LATE_CREATED))
                rows.append(row)
            elif (d, h) == LATE:
                rows.append(dict(row, created=ts + dt.timedelta(hours=3)))
            elif (d, h) in (FULL_TIE, ONLINE_TIE):
                rows.append(dict(row, conv_rate=TIE_A))
                rows.append(dict(row, conv_rate=TIE_B))
            else:
                rows.append(row)
    schema = pa.schema([("driver_id", pa.int64()), ("event_timestamp", TS), ("created", TS),
                        ("conv_rate", pa.float32()), ("acc_rate", pa.float32()),
                        ("avg_daily_trips", pa.int64()), ("embedding", pa.list_(pa.float32()))])
    return pa.Table.from_pylist(rows, schema=schema)


def profiles_table(end: dt.datetime) -> pa.Table:
    rows = []
    cities = ["lisbon", "porto", "faro"]
    for d in DRIVERS:
        rows.append(dict(driver_id=d, event_timestamp=hour(end, 0) - dt.timedelta(days=1),
                         home_city=cities[d % 3], rating=4.0 + 0.01 * (d - 1000)))
        rows.append(dict(driver_id=d, event_timestamp=hour(end, 24),
                         home_city=cities[(d + 1) % 3], rating=4.5 + 0.01 * (d - 1000)))
    schema = pa.schema([("driver_id", pa.int64()), ("event_timestamp", TS),
                        ("home_city", pa.string()), ("rating", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def entity_table(end: dt.datetime) -> pa.Table:
    """Entity rows with an entity_row_id, a label and a note saying what
    the row is there to test."""
    rows = []

    def add(d, t, note):
        rows.append(dict(entity_row_id=len(rows), driver_id=d, event_timestamp=t, label=len(rows) % 2, note=note))

    for d in DRIVERS:
        for h in range(1, HOURS, 5):  # no hour of a tie
            add(d, hour(end, h) + dt.timedelta(minutes=30), "between hours")
    add(1004, hour(end, 10), "at an event time")
    add(1005, hour(end, HOURS - 1) + TTL, "at T - ttl exactly")
    add(1005, hour(end, HOURS - 1) + TTL + dt.timedelta(microseconds=1), "1us past the ttl")
    add(STALE_DRIVER, hour(end, STALE_LAST) + TTL, "stale driver at T - ttl")
    add(STALE_DRIVER, hour(end, STALE_LAST + 5), "stale driver past the ttl")
    add(CREATED_TIE[0], hour(end, CREATED_TIE[1]) + dt.timedelta(minutes=10), "created-time tie")
    add(FULL_TIE[0], hour(end, FULL_TIE[1]) + dt.timedelta(minutes=10), "full tie")
    add(DUPLICATE[0], hour(end, DUPLICATE[1]) + dt.timedelta(minutes=7), "duplicate entity row")
    add(DUPLICATE[0], hour(end, DUPLICATE[1]) + dt.timedelta(minutes=7), "duplicate entity row")
    add(LATE[0], hour(end, LATE[1]) + dt.timedelta(minutes=30), "created after T")
    add(9999, hour(end, 10), "unknown driver")
    add(1007, hour(end, 0) - dt.timedelta(days=3), "before any data")
    schema = pa.schema([("entity_row_id", pa.int64()), ("driver_id", pa.int64()), ("event_timestamp", TS),
                        ("label", pa.int64()), ("note", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def write_feast_repo(path: Path, redis_port: int, end: dt.datetime) -> Path:
    """The Feast repository in path: feature_store.yaml over Redis on
    redis_port (db 0), the definitions and their Parquet files."""
    (path / "data").mkdir(parents=True)
    (path / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(port=redis_port))
    (path / "definitions.py").write_text(DEFINITIONS % {"ttl": TTL.total_seconds()})
    pq.write_table(stats_table(end), path / "data" / "driver_stats.parquet")
    pq.write_table(profiles_table(end), path / "data" / "driver_profiles.parquet")
    return path


ON_DEMAND_PORTED = """\
on_demand_feature_views:
  - name: driver_scores
    inputs: [driver_hourly]
    features:
      - {name: conv_x_acc, type: float64, expr: "driver_hourly.conv_rate * driver_hourly.acc_rate"}
"""
ON_DEMAND_COMMENT = "# - driver_scores:conv_x_acc (on-demand view: port it, then add this reference)"


def port_on_demand(quiver_repo: Path) -> None:
    """Ports driver_scores by hand, as docs/migrating-from-feast.md says:
    the Python body becomes a CEL expression, and the feature service gets
    its reference back."""
    (quiver_repo / "features" / "on_demand.yaml").write_text(ON_DEMAND_PORTED)
    services = quiver_repo / "features" / "feature_services.yaml"
    text = services.read_text()
    assert ON_DEMAND_COMMENT in text, f"{services} does not list driver_scores commented out:\n{text}"
    services.write_text(text.replace(ON_DEMAND_COMMENT, '- "driver_scores:conv_x_acc"'))
