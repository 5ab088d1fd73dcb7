#!/usr/bin/env python3
"""kafka-connect-py's whole client API (its KafkaConnect class) against a running host.

    kafka_connect_py.py URL WORKDIR

Creates a FileSource reading WORKDIR/in/events.jsonl into topic `kc` and a FileSink writing
WORKDIR/out/kc.jsonl, then calls every method of the client, checking what each returns, and
deletes them. Exits non-zero (with the failing call) on the first error; prints "ok" at the end.
"""
import json
import os
import sys
import time

from kafka_connect import KafkaConnect


def wait(what, check, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}")


def main(url, workdir):
    kc = KafkaConnect(url=url)
    out = os.path.join(workdir, "out", "kc.jsonl")
    source = {"name": "kc-source", "config": {
        "connector.class": "headwater.file.FileSource",
        "path": os.path.join(workdir, "in", "events.jsonl"),
        "topic": "kc",
    }}
    sink = {"name": "kc-sink", "config": {
        "connector.class": "headwater.file.FileSink",
        "topics": "kc",
        "file": out,
    }}

    info = kc.get_cluster_info()
    assert "version" in info, info

    assert kc.create_connector(sink)["name"] == "kc-sink"
    assert kc.create_connector(source)["name"] == "kc-source"
    assert sorted(kc.list_connectors()) == ["kc-sink", "kc-source"]

    def state(name):
        return kc.get_connector_status(name)["connector"]["state"]

    for name in ("kc-sink", "kc-source"):
        wait(f"{name} running", lambda: state(name) == "RUNNING")
    wait("the records in the sink's file",
         lambda: os.path.exists(out) and len(open(out).read().splitlines()) == 3)

    statuses = kc.list_connectors(expand="status")
    assert statuses["kc-sink"]["status"]["connector"]["state"] == "RUNNING", statuses
    infos = kc.list_connectors(expand="info")
    assert infos["kc-source"]["info"]["type"] == "source", infos
    assert list(kc.list_connectors(expand="status", pattern="kc-si.*")) == ["kc-sink"]
    assert sorted(kc.list_connectors(expand="status", state="running")) == ["kc-sink", "kc-source"]

    assert kc.get_connector("kc-sink")["config"]["topics"] == "kc"
    assert kc.get_connector_config("kc-source")["topic"] == "kc"
    updated = dict(sink["config"], **{"batch.size": "100"})
    assert kc.update_connector("kc-sink", updated)["config"]["batch.size"] == "100"

    tasks = kc.list_connector_tasks("kc-sink")
    assert tasks[0]["id"] == {"connector": "kc-sink", "task": 0}, tasks
    assert kc.get_connector_task_status("kc-sink", 0)["state"] in ("RUNNING", "UNASSIGNED")
    kc.restart_connector_task("kc-sink", 0)
    # Booleans as Python spells them (True/False), as Kafka Connect accepts them.
    kc.restart_connector("kc-sink", include_tasks=True, only_failed=False)
    kc.restart_connector("kc-source")
    kc.restart_all_connectors(pattern="kc-.*")
    for name in ("kc-sink", "kc-source"):
        wait(f"{name} running after the restarts", lambda: state(name) == "RUNNING")

    kc.pause_connector("kc-source")
    wait("kc-source paused", lambda: state("kc-source") == "PAUSED")
    kc.resume_connector("kc-source")
    wait("kc-source resumed", lambda: state("kc-source") == "RUNNING")
    kc.pause_all_connectors(pattern="kc-.*")
    wait("all paused", lambda: all(state(n) == "PAUSED" for n in ("kc-sink", "kc-source")))
    kc.resume_all_connectors(state="paused")
    wait("all resumed", lambda: all(state(n) == "RUNNING" for n in ("kc-sink", "kc-source")))
    kc.stop_connector("kc-source")
    wait("kc-source stopped", lambda: state("kc-source") == "STOPPED")
    kc.stop_all_connectors(pattern="kc-sink")
    wait("kc-sink stopped", lambda: state("kc-sink") == "STOPPED")

    topics = kc.list_connector_topics("kc-source")
    assert topics == {"kc-source": {"topics": ["kc"]}}, topics
    kc.reset_connector_topics("kc-source")
    assert kc.list_connector_topics("kc-source") == {"kc-source": {"topics": []}}

    plugins = kc.list_connector_plugins()
    assert any(p["class"] == "headwater.file.FileSink" for p in plugins), plugins
    checked = kc.validate_connector_config("headwater.file.FileSink", {
        "connector.class": "headwater.file.FileSink", "topics": "kc", "file": out})
    assert checked["error_count"] == 0, checked
    bad = kc.validate_connector_config("headwater.file.FileSink", {
        "connector.class": "headwater.file.FileSink", "topics": "kc"})
    assert bad["error_count"] >= 1, bad

    kc.delete_connector("kc-source")
    kc.delete_all_connectors(pattern="kc-.*")
    wait("no connectors left", lambda: kc.list_connectors() == [])
    print(json.dumps("ok"))


if __name__ == "__main__":
    main(*sys.argv[1:])
