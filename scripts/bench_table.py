#!/usr/bin/env python3
"""The table of scripts/bench.sh: one row per headline figure of a results file (JSON lines
written by host/benches/common/figure.rs), as Markdown, beside a previous run's figures.

    bench_table.py RESULTS.jsonl [--against PREVIOUS.jsonl | --history DIR] [--title TEXT]

Each path is compared with PREVIOUS's figure for it, or with the latest figure for it in the
results files of DIR older than RESULTS (so a run of a few benches does not hide the others'
history from the next full run).

The change column compares the ratio to the ceiling where both runs have one (the ceiling is
measured in the same run, so the ratio does not move with the machine's mood), else the value;
"worse" marks a path more than WORSE_BY worse than before.
"""

import argparse
import glob
import json
import os
import math
import sys

WORSE_BY = 0.25


def load(path):
    figures = {}
    if not path:
        return figures
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    figure = json.loads(line)
                    key = (figure["path"], figure.get("ceiling_name"))
                    figures[key] = figure
    except FileNotFoundError:
        print(f"bench_table: no previous results at {path}", file=sys.stderr)
    return figures


def history(directory, current):
    """The latest figure of each path in the results files of `directory` older than `current`."""
    figures = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        if os.path.basename(path) >= os.path.basename(current):
            continue
        figures.update(load(path))
    return figures


def number(value, unit=""):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.0f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def goal_cell(figure):
    goal = figure.get("goal")
    if goal is None:
        return ""
    if figure.get("ratio") is not None:
        # On the ratio, which is above 1 when Headwater does better, whichever the direction.
        met = figure["ratio"] >= goal
        text = f"≥ {goal:g}"
    elif figure["better"] == "higher":
        met = figure["value"] >= goal
        text = f"≥ {goal:,g}"
    else:
        met = figure["value"] <= goal
        text = f"≤ {goal:,g}"
    return f"{text} {'met' if met else '**not met**'}"


def change_cell(figure, before):
    if before is None:
        return ""
    if figure.get("ratio") is not None and before.get("ratio") is not None:
        now, then, what = figure["ratio"], before["ratio"], "ratio"
    else:
        now, then, what = figure["value"], before["value"], figure["unit"]
        if figure["better"] == "lower":
            now, then = then, now  # a smaller cost is the better figure
    if not then or any(math.isnan(x) for x in (now, then)):
        return ""
    change = now / then - 1
    shown = number(before["ratio"] if what == "ratio" else before["value"])
    mark = " **worse**" if change < -WORSE_BY else ""
    return f"{shown} → {change:+.0%}{mark}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--against", default="")
    parser.add_argument("--history", default="")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    now = load(args.results)
    if args.against:
        before = load(args.against)
    elif args.history:
        before = history(args.history, args.results)
    else:
        before = {}
    if args.title:
        print(f"Measured {args.title}.\n")
    print("| path | Headwater | ceiling or peer, same run | ratio | goal | before → change |")
    print("|---|---|---|---|---|---|")
    for key, figure in now.items():
        ceiling = ""
        if figure.get("ceiling_name"):
            ceiling = f"{number(figure['ceiling'], figure['unit'])} ({figure['ceiling_name']})"
        ratio = figure.get("ratio")
        print(
            f"| {figure['path']} | {number(figure['value'], figure['unit'])} | {ceiling} "
            f"| {number(ratio) if ratio is not None else ''} | {goal_cell(figure)} "
            f"| {change_cell(figure, before.get(key))} |"
        )
    missing = {path for (path, _) in before} - {path for (path, _) in now}
    if missing and now:
        print(f"\n({len(missing)} paths measured before were not measured in this run.)")

if __name__ == "__main__":
    main()
