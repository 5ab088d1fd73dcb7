"""Feast's own SDK reads Headwater's offline store: `get_historical_features` over the daily
job's Parquet output (a `FileSource` whose `timestamp_field` is the window's end), for entity
rows at several times. Run by tests/e2e/batch.rs.

    python3 feast_historical.py REPO_DIR OFFLINE_TABLE_DIR ENTITY_ROWS_JSON

ENTITY_ROWS_JSON: [{"user_id": "u01", "event_timestamp": "2024-03-05T12:00:00Z"}, ...].
Prints the rows Feast returns as JSON: user_id, event_timestamp, total_amount,
transaction_count (null where Feast found no feature row).
"""
import json
import os
import sys
from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64, Int64

repo, table, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
os.makedirs(os.path.join(repo, "data"), exist_ok=True)
with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
    f.write(
        f"""project: headwater_batch
registry: {repo}/data/registry.db
provider: local
online_store:
  type: sqlite
  path: {repo}/data/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""
    )

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
daily = FeatureView(
    name="user_daily",
    entities=[user],
    # A day's features serve the next two days.
    ttl=timedelta(days=2),
    schema=[
        Field(name="total_amount", dtype=Float64),
        Field(name="transaction_count", dtype=Int64),
    ],
    source=FileSource(path=table, timestamp_field="window_end", file_format=ParquetFormat()),
    online=False,
)
store = FeatureStore(repo_path=repo)
store.apply([user, daily])
entity_df = pd.DataFrame(rows)
entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)
result = store.get_historical_features(
    entity_df=entity_df,
    features=["user_daily:total_amount", "user_daily:transaction_count"],
).to_df()
result = result.sort_values(["user_id", "event_timestamp"])
out = []
for r in result.itertuples(index=False):
    out.append({
        "user_id": r.user_id,
        "event_timestamp": r.event_timestamp.isoformat(),
        "total_amount": None if pd.isna(r.total_amount) else float(r.total_amount),
        "transaction_count": None if pd.isna(r.transaction_count) else int(r.transaction_count),
    })
print(json.dumps(out))
