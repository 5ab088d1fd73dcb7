#!/usr/bin/env python3
"""Writes the features demo's click events: 200 users browsing for two hours, as JSON lines,
deterministic. Events are out of order by up to 4 seconds (the window's watermark waits 5);
a few arrive two minutes late (within the window's allowed lateness: they update their
window) and a few ten minutes late (past it: dead letters).

    examples/features/clicks.py OUT_FILE
"""
import json
import random
import sys

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PAGES = ["/home", "/search", "/product/1", "/product/2", "/product/3", "/cart", "/checkout",
         "/account", "/help", "/deals"]


def main(out):
    rng = random.Random(42)
    with open(out + ".tmp", "w") as f:
        for i in range(40_000):
            ts = START_MS + i * 180 - rng.randrange(4000)
            r = rng.random()
            if r < 0.01:
                ts -= 120_000
            elif r < 0.015:
                ts -= 600_000
            user = f"u{rng.randrange(200):03d}"
            f.write(json.dumps({"user_id": user, "page": rng.choice(PAGES), "ts": ts}) + "\n")
    # Renamed into place: the file source never sees half a file.
    import os
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main(*sys.argv[1:])
