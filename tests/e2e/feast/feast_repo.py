"""A Feast repository for the Redis sink's `feast` layout test, driven by Feast's own SDK.

    python3 feast_repo.py REPO_DIR REDIS_HOST:PORT apply
    python3 feast_repo.py REPO_DIR REDIS_HOST:PORT read USER_ID...

`apply` registers the entity and feature view; `read` prints the online features Feast reads
from Redis for the given users, as JSON.
"""
import json
import os
import sys
from datetime import timedelta

from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

repo, redis_addr, command = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(os.path.join(repo, "data"), exist_ok=True)
with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
    f.write(
        f"""project: headwater_test
registry: {repo}/data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "{redis_addr}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""
    )

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
stats = FeatureView(
    name="user_stats",
    entities=[user],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="clicks", dtype=Int64),
        Field(name="score", dtype=Float64),
        Field(name="country", dtype=String),
    ],
    source=FileSource(path=os.path.join(repo, "data", "unused.parquet"), timestamp_field="ts"),
    online=True,
)
store = FeatureStore(repo_path=repo)
if command == "apply":
    store.apply([user, stats])
elif command == "read":
    rows = [{"user_id": int(u)} for u in sys.argv[4:]]
    features = ["user_stats:clicks", "user_stats:score", "user_stats:country"]
    print(json.dumps(store.get_online_features(features=features, entity_rows=rows).to_dict()))
else:
    sys.exit(f"unknown command {command}")
