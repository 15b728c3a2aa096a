#!/usr/bin/env python3
"""Alternates several benchmark programs that print JSON lines in the peers' schema (two builds
of `xtask bench`, say, and the PyTorch peer) round by round, and prints for each workload case
the median over rounds of each program's time relative to the first one, with the raw medians.

    python3 xtask/compare_builds.py --workloads W2,W3 --threads 1 --rounds 6 \
        --cmd before=/tmp/old-target/release/xtask bench \
        --cmd after=target/release/xtask bench \
        --cmd torch=/tmp/peers/.venv/bin/python /tmp/peers/torch_bench.py

Each `--cmd NAME=PROGRAM ARGS...` gets `--workloads W --threads N --min-time S` appended. The
order of the programs rotates every round so that none always runs first after a quiet spell.
"""
import argparse
import statistics
import sys

from compare_peers import key, measure, run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cmd", action="append", nargs="+", required=True, help="NAME=PROGRAM followed by its arguments")
    p.add_argument("--workloads", default="W2")
    p.add_argument("--threads", default="2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", default="1")
    p.add_argument("--peer-impl", default="nn.LSTM", help="which peer implementation of W3 to keep")
    a = p.parse_args()
    cmds = []
    for c in a.cmd:
        name, prog = c[0].split("=", 1)
        cmds.append((name, [prog] + c[1:] + ["--workloads", a.workloads, "--threads", a.threads, "--min-time", a.min_time]))
    values = {}  # case -> name -> [value per round]
    for r in range(a.rounds):
        order = cmds[r % len(cmds):] + cmds[: r % len(cmds)]
        for name, cmd in order:
            for x in run(cmd):
                if x.get("impl") not in (None, "fused", a.peer_impl) or not x.get("jit", True):
                    continue
                v, higher_better = measure(x)
                if v is None:
                    continue
                values.setdefault(key(x), {}).setdefault(name, []).append(1.0 / v if higher_better else v)
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    base = cmds[0][0]
    for case, by_name in sorted(values.items()):
        if base not in by_name:
            continue
        b = by_name[base]
        parts = []
        for name, _ in cmds:
            if name in by_name:
                vs = by_name[name]
                ratios = [x / y for x, y in zip(vs, b)]
                parts.append(f"{name} {statistics.median(vs):.4g} ({statistics.median(ratios):.2f}x {base})")
        print(" ".join(f"{k}={v}" for k, v in case) + ": " + "; ".join(parts))


if __name__ == "__main__":
    main()
