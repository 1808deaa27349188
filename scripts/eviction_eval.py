#!/usr/bin/env python3
"""Eviction policies against LRU over generated families × seeds × capacities (and traces), for docs/eviction.md.

  scripts/eviction_eval.py [--kvbm build/bin/kvbm] [--presets a,b] [--seeds 1-8] [--capacities 250,1000]
                           [--policies lru,learned,adaptive] [--trace FILE ...] [--csv out.csv]

Every point is one `kvbm replay --no-data --compare lru,... --sweep g1=...` run (metadata only; the same
semantics as the tests). For each policy it prints, per family and capacity, the aggregate block hits over
the seeds as a ratio to LRU's, and over all points: how many are below LRU, how many by more than
2 √(LRU's hits) (the bar a default is held to), and the worst point in units of √(LRU's hits).
Results depend on the build and the arguments only (replay is deterministic).
"""
import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile
from collections import defaultdict


def seeds_of(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def replay(kvbm, source, policies, capacities, tmp):
    out_csv = os.path.join(tmp, "sweep.csv")
    cmd = [kvbm, "replay", "--no-data", "--compare", ",".join(policies), "--sweep",
           "g1=" + ",".join(str(c) for c in capacities), "--out-csv", out_csv,
           "--out-svg", os.path.join(tmp, "sweep.svg")] + source
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    hits = {}
    with open(out_csv) as f:
        for row in csv.DictReader(f):
            hits[(row["policy"], int(row["capacity_blocks"]))] = int(row["blocks_hit"])
    return hits


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kvbm", default="build/bin/kvbm")
    ap.add_argument("--presets", default="")
    ap.add_argument("--seeds", default="1-4")
    ap.add_argument("--capacities", default="16,32,64,128,250,500,1000,2000,4000")
    ap.add_argument("--policies", default="lru,learned,adaptive")
    ap.add_argument("--trace", action="append", default=[])
    ap.add_argument("--csv", help="write every point here")
    args = ap.parse_args()
    policies = args.policies.split(",")
    if policies[0] != "lru":
        policies.insert(0, "lru")
    capacities = [int(c) for c in args.capacities.split(",")]
    sources = []
    for preset in filter(None, args.presets.split(",")):
        for seed in seeds_of(args.seeds):
            sources.append((preset, seed, ["--workload", preset, "--seed", str(seed)]))
    for trace in args.trace:
        sources.append((os.path.basename(trace), 0, ["--trace", trace]))

    points = []  # (family, seed, capacity, policy, hits, lru_hits)
    with tempfile.TemporaryDirectory() as tmp:
        for family, seed, source in sources:
            hits = replay(args.kvbm, source, policies, capacities, tmp)
            for c in capacities:
                for p in policies[1:]:
                    points.append((family, seed, c, p, hits[(p, c)], hits[("lru", c)]))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["family", "seed", "capacity", "policy", "hits", "lru_hits"])
            w.writerows(points)

    families = list(dict.fromkeys(p[0] for p in points))
    for p in policies[1:]:
        print(f"== {p} / lru, aggregate block hits over the seeds")
        print("family".ljust(34) + "".join(str(c).rjust(8) for c in capacities))
        for fam in families:
            agg = defaultdict(lambda: [0, 0])
            for q in points:
                if q[0] == fam and q[3] == p:
                    agg[q[2]][0] += q[4]
                    agg[q[2]][1] += q[5]
            print(fam.ljust(34) + "".join(
                (f"{agg[c][0] / agg[c][1]:.3f}" if agg[c][1] else "-").rjust(8) for c in capacities))
        mine = [q for q in points if q[3] == p]
        below = [q for q in mine if q[4] < q[5]]
        worst = min(mine, key=lambda q: (q[4] - q[5]) / math.sqrt(max(q[5], 1)))
        over = [q for q in mine if q[4] + 2 * math.sqrt(q[5]) < q[5]]
        total, total_lru = sum(q[4] for q in mine), sum(q[5] for q in mine)
        print(f"points {len(mine)}: below lru {len(below)}, by > 2 sqrt {len(over)}; aggregate "
              f"{total / max(total_lru, 1):.4f}; worst {worst[0]} seed {worst[1]} at {worst[2]}: "
              f"{worst[4]} vs {worst[5]} ({(worst[4] - worst[5]) / math.sqrt(max(worst[5], 1)):+.2f} sqrt)")
        for q in over:
            print(f"  over the bar: {q[0]} seed {q[1]} at {q[2]}: {q[4]} vs {q[5]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
