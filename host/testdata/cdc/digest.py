#!/usr/bin/env python3
"""SHA-256 of a CDC capture's records without their schemas, masked as the Debezium oracle's
normalize.py masks them (ts_ms/ts_us/ts_ns, txId, lsn, sequence, "txid:lsn" ids).

    python3 digest.py FILE.jsonl

Reads either the oracle's lines ({"topic","headers","key","value"} with JsonConverter envelopes)
or Headwater FileSink lines written with schemas.enable=false, and prints one hex digest of
the lines {"topic","key","value"} in order. The schemas are compared record for record by the
smaller golden cases; this checks the data of large captures."""
import hashlib, json, sys

def mask(o):
    if isinstance(o, dict):
        return {k: ('<v>' if k in ('ts_ms', 'ts_us', 'ts_ns', 'txId', 'lsn', 'sequence')
                    or (k == 'id' and isinstance(v, str) and ':' in v) else mask(v)) for k, v in o.items()}
    if isinstance(o, list):
        return [mask(x) for x in o]
    return o

def payload(v):
    if isinstance(v, dict) and set(v) == {'schema', 'payload'}:
        return v['payload']
    return v

h = hashlib.sha256()
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        rec = {'topic': r['topic'], 'key': payload(r['key']), 'value': payload(r['value'])}
        h.update(json.dumps(mask(rec), sort_keys=True, separators=(',', ':')).encode())
        h.update(b'\n')
print(h.hexdigest())
