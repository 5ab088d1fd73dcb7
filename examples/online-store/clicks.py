#!/usr/bin/env python3
"""Produces the demo's click events to a Kafka topic (created if missing), as an application
would: JSON values keyed by user. Every fifth event is sent late (its time is 30 s older than
the one before it), so the online store must keep the newest click, not the last to arrive.

    examples/online-store/clicks.py BOOTSTRAP TOPIC COUNT

Prints, as JSON, each user's newest click: what Redis must hold once Headwater has caught up.
"""
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

PAGES = ["/home", "/search", "/product/42", "/cart", "/checkout"]
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def clicks(count):
    for i in range(count):
        late = i % 5 == 4
        ts = START_MS + i * 1000 - (30_000 if late else 0)
        yield {"user_id": str(1 + i % 4), "page": PAGES[(i * 7) % len(PAGES)], "ts": ts,
               "session": f"s{i // 20}"}


def main(bootstrap, topic, count):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in admin.list_topics(timeout=10).topics:
        for f in admin.create_topics([NewTopic(topic, 2, 1)]).values():
            f.result()
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    newest = {}

    def delivered(err, _msg):
        if err is not None:
            sys.exit(f"delivery failed: {err}")

    for click in clicks(int(count)):
        producer.produce(topic, key=click["user_id"], value=json.dumps(click),
                         on_delivery=delivered)
        producer.poll(0)
        best = newest.get(click["user_id"])
        if best is None or click["ts"] > best["ts"]:
            newest[click["user_id"]] = click
    producer.flush(60)
    print(json.dumps(newest, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:])
