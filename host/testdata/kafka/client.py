#!/usr/bin/env python3
"""Kafka's own Python client (confluent-kafka) on the other side of Headwater in the tests.

    client.py create BOOTSTRAP TOPIC PARTITIONS
    client.py produce-json BOOTSTRAP TOPIC COUNT [START]
        click events {"id", "user_id", "page", "ts"} keyed by user, as JSON, with a header
        origin=python
    client.py produce-avro BOOTSTRAP TOPIC COUNT REGISTRY_URL [START]
        the same events with confluent-kafka's AvroSerializer (schema registered in REGISTRY_URL)
    client.py produce-raw BOOTSTRAP TOPIC KEY VALUE_HEX
        one message with exactly these value bytes (poison records)
    client.py consume BOOTSTRAP TOPIC COUNT
        prints COUNT messages (from the beginning) as JSON lines: key, value (text or hex),
        headers, partition, offset
"""
import json
import sys

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

AVRO_SCHEMA = json.dumps({
    "type": "record", "name": "Click", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "user_id", "type": "string"},
        {"name": "page", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "session", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "referrer", "type": ["null", "string"], "default": None},
    ],
})


def click(i):
    return {"id": i, "user_id": f"u{i % 17}", "page": f"/p/{i % 5}", "ts": 1700000000000 + i}


def delivered(err, msg):
    if err is not None:
        sys.exit(f"delivery failed: {err}")


def producer(bootstrap):
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})


def main(cmd, bootstrap, topic, *rest):
    if cmd == "create":
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(topic, int(rest[0]), 1)]).values():
            f.result()
    elif cmd == "produce-json":
        count, start = int(rest[0]), int(rest[1]) if len(rest) > 1 else 0
        p = producer(bootstrap)
        for i in range(start, start + count):
            c = click(i)
            p.produce(topic, key=c["user_id"], value=json.dumps(c), headers=[("origin", b"python")],
                      on_delivery=delivered)
            p.poll(0)
        p.flush(60)
    elif cmd == "produce-avro":
        import datetime
        import decimal
        import uuid
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        count, url = int(rest[0]), rest[1]
        start = int(rest[2]) if len(rest) > 2 else 0
        registry = SchemaRegistryClient({"url": url})
        serialize = AvroSerializer(registry, AVRO_SCHEMA)
        p = producer(bootstrap)
        for i in range(start, start + count):
            c = click(i)
            c["ts"] = datetime.datetime.fromtimestamp(c["ts"] / 1000, datetime.timezone.utc)
            c["price"] = decimal.Decimal(i) / 100
            c["day"] = datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 30)
            c["session"] = uuid.UUID(int=i)
            c["referrer"] = None if i % 2 else "/home"
            value = serialize(c, SerializationContext(topic, MessageField.VALUE))
            p.produce(topic, key=c["user_id"], value=value, on_delivery=delivered)
            p.poll(0)
        p.flush(60)
    elif cmd == "produce-raw":
        p = producer(bootstrap)
        p.produce(topic, key=rest[0], value=bytes.fromhex(rest[1]), on_delivery=delivered)
        p.flush(60)
    elif cmd == "consume":
        count = int(rest[0])
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "client-py",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      # A topic created after subscribing is seen within a second.
                      "topic.metadata.refresh.interval.ms": 1000})
        c.subscribe([topic])
        seen = 0
        while seen < count:
            m = c.poll(30)
            if m is None:
                sys.exit(f"only {seen} of {count} messages in {topic}")
            if m.error():
                continue
            def text(b):
                if b is None:
                    return None
                try:
                    return b.decode()
                except UnicodeDecodeError:
                    return {"hex": b.hex()}
            print(json.dumps({
                "key": text(m.key()), "value": text(m.value()),
                "headers": [[k, text(v)] for k, v in (m.headers() or [])],
                "partition": m.partition(), "offset": m.offset(),
            }))
            seen += 1
        c.close()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(*sys.argv[1:])
