#!/usr/bin/env python3
"""Alternates several benchmark programs that print JSON lines in the peers' schema (two builds
of `xtask bench`, say, and the PyTorch peer) round by round, and prints for each workload case
the median over rounds of each program's time relative to the first one, with the raw medians.

    python3 xtask/compare_builds.py --workloads W2,W3 --threads 1 --rounds 6 \
        --cmd before=/tmp/old-target/release/xtask bench \
        --cmd after=target/release/xtask bench \
        --cmd torch=/tmp/peers/.venv/bin/python /tmp/peers/torch_bench.py

Each `--cmd NAME=PROGRAM ARGS...` gets `--workloads W --threads N --min-time S` appended
(`--threads N` only if its own arguments have no `--threads`). A command whose own flags share
a name with this script's goes in quotes, as one string, so that they stay its own: one binary
on 1 and 2 threads is `--cmd 't1=target/release/xtask bench --threads 1' --cmd
t2=target/release/xtask bench --threads 2` (unquoted, `--threads 1` would set this script's
option and both would run on one thread). The
order of the programs rotates every round so that none always runs first after a quiet spell.
With `--wait-idle` each run starts only once all cores have been idle for a second (at most 5
minutes of waiting): on a shared machine a run beside someone else's build says nothing about
threads.
"""
import argparse
import shlex
import statistics
import sys
import time

from compare_peers import key, measure, run


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v)  # idle + iowait, total


def wait_idle(limit_s=300, idle_frac=0.9):
    """Returns once the cores were at least `idle_frac` idle over one second, or after `limit_s`."""
    start = time.time()
    while time.time() - start < limit_s:
        i0, t0 = cpu_times()
        time.sleep(1)
        i1, t1 = cpu_times()
        if (i1 - i0) >= idle_frac * max(1, t1 - t0):
            return
    print("wait-idle: the machine stayed busy, running anyway", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cmd", action="append", nargs="+", required=True, help="NAME=PROGRAM followed by its arguments")
    p.add_argument("--workloads", default="W2")
    p.add_argument("--threads", default="2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", default="1")
    p.add_argument("--peer-impl", default="nn.LSTM", help="which peer implementation of W3 to keep")
    p.add_argument("--wait-idle", action="store_true", help="start each run only once the cores are idle")
    a = p.parse_args()
    cmds = []
    for c in a.cmd:
        if len(c) == 1 and " " in c[0]:
            # one quoted string: the command's own flags may share names with this script's
            c = shlex.split(c[0])
        name, prog = c[0].split("=", 1)
        threads = [] if "--threads" in c[1:] else ["--threads", a.threads]
        cmds.append((name, [prog] + c[1:] + ["--workloads", a.workloads] + threads + ["--min-time", a.min_time]))
    values = {}  # case -> name -> [value per round]
    for r in range(a.rounds):
        order = cmds[r % len(cmds):] + cmds[: r % len(cmds)]
        for name, cmd in order:
            if a.wait_idle:
                wait_idle()
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
