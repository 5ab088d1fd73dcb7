#!/usr/bin/env python3
"""Writes the demo's sample transactions: a few thousand rows over three days, date-partitioned,
as JSONL and CSV (the formats a feature pipeline typically lands), deterministic so that every
run shows the same result. A few rows are deliberately broken to show the dead-letter queue.

    scripts/demo-data.py OUT_DIR
"""
import csv
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROWS_PER_DAY = 1200
DAYS = 3
CURRENCIES = ["USD", "EUR", "GBP"]
MERCHANTS = ["grocer", "airline", "books", "fuel", "cafe", "electronics"]


def rows_for(day: datetime, rng: random.Random):
    for i in range(ROWS_PER_DAY):
        ts = day + timedelta(seconds=rng.randrange(86_400))
        yield {
            "transaction_id": f"{day:%Y%m%d}-{i:05d}",
            "user_id": f"u{rng.randrange(500):04d}",
            "amount": round(rng.lognormvariate(3.0, 1.0), 2),
            "currency": rng.choice(CURRENCIES),
            "merchant": rng.choice(MERCHANTS),
            "card_number": f"4{rng.randrange(10**14, 10**15)}",
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def main(out: Path) -> None:
    rng = random.Random(42)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for d in range(DAYS):
        day = start + timedelta(days=d)
        part = out / "transactions" / f"date={day:%Y-%m-%d}"
        part.mkdir(parents=True, exist_ok=True)
        rows = list(rows_for(day, rng))
        if d == 1:
            # Day two arrives as CSV.
            with open(part / "part-0.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        else:
            with open(part / "part-0.jsonl", "w") as f:
                for n, row in enumerate(rows):
                    f.write(json.dumps(row) + "\n")
                    if d == 0 and n in (100, 700):
                        # A truncated line and a record whose amount is not a number.
                        f.write('{"transaction_id": "broken-%d", "amount": \n' % n)
                        f.write(json.dumps({**row, "transaction_id": f"bad-{n}", "amount": "n/a"}) + "\n")
    print(f"wrote {DAYS * ROWS_PER_DAY + 4} transactions under {out}/transactions")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "var/demo"))
