#!/usr/bin/env python3
"""The chaos soak (run by scripts/soak.sh MINUTES): a realistic mix of pipelines under load
while Headwater, PostgreSQL, Redis and the Kafka broker (tansu on its SQLite store, so it keeps
its topics) are killed with SIGKILL and restarted at random, and the broker is also frozen
(SIGSTOP) and thawed; then everything is checked against the inputs.

Pipelines (one host, configs in connectors.d/):
  - CDC -> WASM -> Redis: PostgreSQL `accounts`, updated all along, captured by the
    Debezium-compatible source, unwrapped, passed through a WASM step, written to Redis hashes.
    Checked: every row's final state in Redis equals PostgreSQL's.
  - files -> Parquet: JSONL files dropped into in/ all along. Checked: every row exactly once
    in the committed Parquet files.
  - Kafka -> window -> Redis: clicks produced to Kafka, counted per user per 10-second window.
    Checked: every closed window's count equals the reference computed from the clicks Kafka
    acknowledged.
  - Kafka -> KafkaSink: the clicks copied to another topic. Checked: every acknowledged click
    is there (duplicates are allowed: at-least-once).

Prints one line per check and a summary (faults survived, records checked, lost, duplicated);
exits 1 if anything was lost or differs.
"""

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 200
WINDOW_MS = 10_000
WATERMARK_DELAY_MS = 2_000
# The soak's own Kafka clients stay quiet about the broker going away: that is the point.
QUIET = {"log_level": 0}


def log(message):
    print(f"soak: {message}", file=sys.stderr, flush=True)


class Service:
    """A service started by scripts/service.sh in its own state directory."""

    def __init__(self, kind, state, env=None):
        self.kind, self.state = kind, state
        out = subprocess.run([ROOT / "scripts/service.sh", "start", kind, state],
                             check=True, capture_output=True, text=True,
                             env={**os.environ, **(env or {})}).stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.port, self.url = int(values["PORT"]), values["URL"]

    def pid(self):
        return int(Path(self.state, "pid").read_text().strip())

    def kill9(self):
        os.kill(self.pid(), signal.SIGKILL)
        time.sleep(0.2)

    def restart(self):
        subprocess.run([ROOT / "scripts/service.sh", "restart", self.state],
                       check=True, capture_output=True)

    def stop(self):
        subprocess.run([ROOT / "scripts/service.sh", "stop", self.state], capture_output=True)


class Headwater:
    def __init__(self, workspace, binary):
        self.workspace, self.binary, self.process = workspace, binary, None

    def start(self):
        log_file = open(self.workspace / "headwater.log", "ab")
        self.process = subprocess.Popen(
            [self.binary, "run", "--config", "worker.toml", "--connectors-dir", "connectors.d",
             "--data-dir", "var", "--rest-listen", "127.0.0.1:0"],
            cwd=self.workspace, stdout=subprocess.DEVNULL, stderr=log_file,
            env={**os.environ, "HEADWATER_LOG": "info"})

    def kill9(self):
        self.process.kill()
        self.process.wait()

    def rss_mib(self):
        """The host's resident memory now (0 if it is not running)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        kib = next((int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmRSS:")), 0)
        return kib // 1024

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def psql(pg, sql):
    return subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql, pg.url],
                          check=True, capture_output=True, text=True).stdout


def write_configs(workspace, pg, redis_url, broker):
    wasm = ROOT / "plugins/target/wasm32-wasip2/release/passthrough.wasm"
    configs = {
        "accounts-cdc": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1", "database.port": str(pg.port),
            "database.user": "postgres", "database.dbname": "postgres",
            "topic.prefix": "pg", "slot.name": "soak", "publication.name": "soak",
            "publication.autocreate.mode": "filtered", "table.include.list": "public.accounts",
        },
        "accounts-online": {
            "connector.class": "headwater.redis.RedisSink", "topics": "pg.public.accounts",
            "transforms": "unwrap,wasm",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.wasm.type": "headwater.wasm.Transform",
            "transforms.wasm.module": str(wasm),
            "redis.uri": redis_url, "key.prefix": "account:", "key.fields": "id",
        },
        "files": {
            "connector.class": "headwater.file.FileSource", "path": "in/*.jsonl",
            "topic": "rows", "poll.interval.ms": "200",
        },
        "lake": {
            "connector.class": "headwater.parquet.ParquetSink", "topics": "rows",
            "path": "out/lake", "rotate.interval.ms": "2000",
        },
        "click-windows": {
            "connector.class": "headwater.redis.RedisSink", "topics": "clicks",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "window", "transforms.window.type": "headwater.window.Aggregate",
            "transforms.window.group.by": "user_id", "transforms.window.window.type": "tumbling",
            "transforms.window.window.size.ms": str(WINDOW_MS),
            "transforms.window.time.field": "ts",
            "transforms.window.watermark.delay.ms": str(WATERMARK_DELAY_MS),
            "transforms.window.aggregates": "clicks:count",
            "redis.uri": redis_url, "key.prefix": "win:", "key.fields": "user_id,window_start",
        },
        "click-copy": {
            "connector.class": "headwater.kafka.KafkaSink", "topics": "clicks",
            "topic": "clicks-copy",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
        },
    }
    directory = workspace / "connectors.d"
    directory.mkdir(parents=True, exist_ok=True)
    for name, config in configs.items():
        (directory / f"{name}.json").write_text(json.dumps({"name": name, "config": config}))
    # Static membership, as a StatefulSet would run it: a host killed and started again rejoins
    # its groups as the same member and gets its partitions back at once.
    (workspace / "worker.toml").write_text(
        f'[kafka]\nbootstrap_servers = "{broker}"\ngroup_instance_id = "soak-host"\n')


class Load:
    """The inputs, written all along, and what was acknowledged of them."""

    def __init__(self, workspace, pg, broker):
        self.workspace, self.pg, self.broker = workspace, pg, broker
        self.stop = threading.Event()
        self.file_rows = 0
        self.clicks = {}  # id -> (user, ts), acknowledged by Kafka
        self.lock = threading.Lock()
        self.pg_up = threading.Event()
        self.pg_up.set()

    def accounts(self):
        while not self.stop.is_set():
            self.pg_up.wait()
            ids = random.sample(range(1, ACCOUNTS + 1), 5)
            sql = ";".join(f"UPDATE accounts SET balance = {random.randint(0, 10**6)}, "
                           f"version = version + 1 WHERE id = {i}" for i in ids)
            try:
                psql(self.pg, f"BEGIN;{sql};COMMIT")
            except subprocess.CalledProcessError:
                time.sleep(0.2)  # PostgreSQL is down: the final state is read at the end
            time.sleep(0.05)

    def files(self):
        n = 0
        while not self.stop.is_set():
            rows = [json.dumps({"id": self.file_rows + i, "amount": random.random()})
                    for i in range(100)]
            part = self.workspace / "in" / f".f{n}.part"
            part.write_text("\n".join(rows) + "\n")
            part.rename(self.workspace / "in" / f"f{n}.jsonl")
            self.file_rows += len(rows)
            n += 1
            time.sleep(0.25)

    def produce(self):
        producer = Producer({**QUIET, "bootstrap.servers": self.broker, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 20})
        next_id = 0

        def delivered(err, msg):
            if err is None:
                click = json.loads(msg.value())
                with self.lock:
                    self.clicks[click["id"]] = (click["user_id"], click["ts"])

        while not self.stop.is_set():
            for _ in range(20):
                user = f"u{random.randint(0, 19)}"
                click = {"id": next_id, "user_id": user, "ts": int(time.time() * 1000)}
                producer.produce("clicks", key=user, value=json.dumps(click), callback=delivered)
                next_id += 1
            producer.poll(0)
            time.sleep(0.1)
        producer.flush(60)

    def start(self):
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self.accounts, self.files, self.produce)]
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)


def wait_until(what, check, timeout):
    deadline = time.time() + timeout
    while True:
        problem = check()
        if problem is None:
            return None
        if time.time() > deadline:
            return f"{what}: {problem}"
        time.sleep(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("minutes", type=float)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    random.seed(args.seed)
    work = Path(args.workdir)
    workspace = work / "host"
    (workspace / "in").mkdir(parents=True, exist_ok=True)
    log(f"seed {args.seed}, {args.minutes} minute(s), in {work}")

    pg = Service("postgres", str(work / "pg"))
    rds = Service("redis", str(work / "redis"))
    broker_service = Service("tansu", str(work / "tansu"), {"TANSU_STORAGE": "sqlite"})
    broker = broker_service.url.replace("tcp://", "")
    services = [pg, rds, broker_service]
    headwater = Headwater(workspace, args.binary)
    faults = collections.Counter()
    try:
        psql(pg, "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint, version int)")
        psql(pg, f"INSERT INTO accounts SELECT i, 0, 0 FROM generate_series(1, {ACCOUNTS}) i")
        admin = AdminClient({**QUIET, "bootstrap.servers": broker})
        for future in admin.create_topics([NewTopic("clicks", 2, 1),
                                           NewTopic("clicks-copy", 1, 1)]).values():
            future.result(30)
        write_configs(workspace, pg, rds.url, broker)
        headwater.start()
        load = Load(workspace, pg, broker)
        load.start()

        deadline = time.time() + args.minutes * 60
        peak_rss = 0
        while time.time() < deadline:
            time.sleep(min(random.uniform(8, 20), max(0.0, deadline - time.time())))
            peak_rss = max(peak_rss, headwater.rss_mib())
            if time.time() >= deadline:
                break
            fault = random.choice(["headwater", "headwater", "postgres", "redis",
                                   "broker-kill", "broker-freeze"])
            log(f"fault: {fault}")
            if fault == "headwater":
                headwater.kill9()
                time.sleep(random.uniform(0, 2))
                headwater.start()
            elif fault == "postgres":
                load.pg_up.clear()
                pg.kill9()
                time.sleep(random.uniform(0, 2))
                pg.restart()
                load.pg_up.set()
            elif fault == "redis":
                rds.kill9()
                time.sleep(random.uniform(0, 2))
                rds.restart()
            elif fault == "broker-kill":
                broker_service.kill9()
                time.sleep(random.uniform(0, 2))
                broker_service.restart()
            else:
                os.kill(broker_service.pid(), signal.SIGSTOP)
                time.sleep(random.uniform(2, 6))
                os.kill(broker_service.pid(), signal.SIGCONT)
            faults[fault] += 1
        log("load stops; waiting for the pipelines to drain")
        load.finish()
        results = verify(workspace, pg, rds, broker, load)
    finally:
        headwater.stop()
        for service in services:
            service.stop()

    summary = {"minutes": args.minutes, "seed": args.seed, "faults": dict(faults),
               "faults_survived": sum(faults.values()), **results,
               "host_peak_rss_mib": peak_rss}
    print(json.dumps(summary))
    return 1 if results["lost"] or results["wrong"] else 0


def verify(workspace, pg, rds, broker, load):
    store = redis.Redis.from_url(rds.url, decode_responses=True)
    lost = wrong = duplicated = 0
    checked = {}
    problems = []

    # CDC -> Redis: every row's final state.
    final = {int(i): (int(b), int(v)) for i, b, v in
             (line.split("|") for line in psql(pg, "SELECT id, balance, version FROM accounts")
              .splitlines())}

    def accounts_differ():
        for i, (balance, version) in final.items():
            row = store.hgetall(f"account:{i}")
            if (row.get("balance"), row.get("version")) != (str(balance), str(version)):
                return f"account {i}: Redis has {row}, PostgreSQL ({balance}, {version})"
        return None
    problem = wait_until("CDC -> Redis", accounts_differ, 180)
    checked["cdc_rows"] = len(final)
    if problem:
        problems.append(problem)
        wrong += 1

    # files -> Parquet: every row exactly once.
    def lake_ids():
        ids = collections.Counter()
        for path in (workspace / "out/lake").rglob("*.parquet"):
            if not path.name.startswith("."):
                ids.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
        return ids
    problem = wait_until("files -> Parquet",
                         lambda: None if len(lake_ids()) >= load.file_rows else
                         f"{len(lake_ids())} of {load.file_rows} rows", 180)
    ids = lake_ids()
    missing = load.file_rows - len([i for i in range(load.file_rows) if i in ids])
    twice = sum(1 for n in ids.values() if n > 1)
    checked["file_rows"] = load.file_rows
    lost += missing
    if twice:
        problems.append(f"files -> Parquet: {twice} rows more than once")
        wrong += twice
    if problem:
        problems.append(problem)

    # Kafka -> KafkaSink: every acknowledged click copied (duplicates allowed).
    clicks = dict(load.clicks)
    # An hour's copy (~700k clicks) takes about a minute to read back from tansu's SQLite store.
    consumer = Consumer({**QUIET, "bootstrap.servers": broker, "group.id": "soak-check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition("clicks-copy", 0, 0)])
    copied = collections.Counter()
    errors = collections.Counter()
    deadline = time.time() + 180
    while time.time() < deadline and not set(clicks) <= set(copied):
        for message in consumer.consume(1000, timeout=1):
            if message.error() is None:
                copied[json.loads(message.value())["id"]] += 1
            else:
                errors[str(message.error())] += 1
    consumer.close()
    missing = len(set(clicks) - set(copied))
    checked["clicks_copied"] = len(clicks)
    lost += missing
    duplicated += sum(n - 1 for n in copied.values() if n > 1)
    if missing:
        problems.append(f"Kafka -> KafkaSink: {missing} of {len(clicks)} clicks not copied "
                        f"(read {sum(copied.values())} records of clicks-copy in 180 s; "
                        f"consumer errors: {dict(errors) or 'none'})")

    # Kafka -> window -> Redis: every window closed by the last click's watermark.
    reference = collections.Counter()
    last_ts = max((ts for _, ts in clicks.values()), default=0)
    for user, ts in clicks.values():
        start = ts - ts % WINDOW_MS
        if start + WINDOW_MS + WATERMARK_DELAY_MS <= last_ts:
            reference[(user, start)] += 1

    def windows_differ():
        for (user, start), count in sorted(reference.items()):
            got = store.hget(f"win:{user}:{start}", "clicks")
            if got != str(count):
                return f"window {user} {start}: Redis has {got}, the clicks make {count}"
        return None
    problem = wait_until("Kafka -> window -> Redis", windows_differ, 180)
    checked["windows"] = len(reference)
    if problem:
        problems.append(problem)
        wrong += 1

    for problem in problems:
        log(f"FAILED {problem}")
    return {"records_checked": sum(checked.values()), "checked": checked, "lost": lost, "duplicated": duplicated,
            "wrong": wrong, "problems": problems}


if __name__ == "__main__":
    sys.exit(main())
