#!/usr/bin/env python3
"""Alternates `cargo xtask bench` with a peer script (PyTorch or JAX) for several rounds and
prints, per workload case, the ratio flux-rs / peer of each round and their median, and the
medians and ranges of the raw figures on both sides.

The machines are shared: absolute times move by 1.5x within an hour and a single pair of runs
can be off by 20%. Alternating the two programs round by round and taking the median of the
per-round ratios is what docs/benchmarks.md quotes.

    python3 xtask/compare_peers.py --peer /tmp/peers/.venv/bin/python /tmp/peers/torch_bench.py \
        --workloads W3 --rounds 5 --min-time 1

Times are compared as time ratios (lower is better for flux-rs); W1's GFLOP/s are turned into
time ratios too (peer GFLOP/s / flux-rs GFLOP/s).
"""
import argparse
import json
import statistics
import subprocess
import sys

# the field holding the measurement, and whether larger is better
MEASURES = [("ms_per_step", False), ("us_per_op", False), ("us_per_call", False), ("gflops", True), ("ms", False)]
CASE_KEYS = ["workload", "n", "batch", "mode", "case"]


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def key(rec):
    return tuple((k, rec[k]) for k in CASE_KEYS if k in rec)


def measure(rec):
    for field, higher_better in MEASURES:
        if field in rec:
            return rec[field], higher_better
    return None, False


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", nargs="+", required=True, help="the peer command, e.g. python torch_bench.py")
    p.add_argument("--workloads", default="W1")
    p.add_argument("--threads", default="2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", default="1")
    p.add_argument("--peer-impl", default="nn.LSTM", help="which peer implementation to compare W3 with")
    a = p.parse_args()
    ours_cmd = ["cargo", "xtask", "bench", "--workloads", a.workloads, "--threads", a.threads, "--min-time", a.min_time]
    peer_cmd = a.peer + ["--workloads", a.workloads, "--threads", a.threads, "--min-time", a.min_time]
    ratios, values, field_of = {}, {}, {}
    for r in range(a.rounds):
        ours = [x for x in run(ours_cmd) if "impl" not in x or x["impl"] == "fused"]
        peer = [x for x in run(peer_cmd) if x.get("impl", a.peer_impl) == a.peer_impl and x.get("jit", True)]
        peer_by_key = {key(x): x for x in peer}
        for x in ours:
            y = peer_by_key.get(key(x))
            if y is None:
                continue
            mx, higher = measure(x)
            my, _ = measure(y)
            ratio = (my / mx) if higher else (mx / my)
            ratios.setdefault(key(x), []).append(ratio)
            values.setdefault(key(x), []).append((mx, my))
            field_of[key(x)] = next(f for f, _ in MEASURES if f in x)
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    for k, rs in ratios.items():
        case = " ".join(f"{n}={v}" for n, v in k)
        print(f"{case}: time ratio flux-rs/peer median {statistics.median(rs):.3f} (rounds: {', '.join(f'{x:.3f}' for x in rs)})")
        ours_v, peer_v = zip(*values[k])
        print(f"    {field_of[k]}, medians: flux-rs {statistics.median(ours_v):.4g}, peer {statistics.median(peer_v):.4g} (ranges {min(ours_v):.4g}-{max(ours_v):.4g} and {min(peer_v):.4g}-{max(peer_v):.4g})")


if __name__ == "__main__":
    main()
