#!/usr/bin/env python3
"""Produces the features demo's click events (examples/features/clicks.py's file) to a Kafka
topic, as an application would: JSON values keyed by user, in the file's (arrival) order. The
topic is created with 4 partitions if missing.

    examples/features/kafka/produce.py BOOTSTRAP TOPIC CLICKS_FILE
"""
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 4


def main(bootstrap, topic, path):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in admin.list_topics(timeout=10).topics:
        for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
            f.result()
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})

    def delivered(err, _msg):
        if err is not None:
            sys.exit(f"delivery failed: {err}")

    with open(path) as f:
        for line in f:
            user = json.loads(line)["user_id"]
            producer.produce(topic, key=user, value=line.rstrip("\n"), on_delivery=delivered)
            producer.poll(0)
    producer.flush(60)


if __name__ == "__main__":
    main(*sys.argv[1:])
