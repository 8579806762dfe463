"""Benchmarks of clusterd on a local cluster: `tools/bench NAME [options]`, `tools/bench all`.

Every benchmark makes its own cluster in a temporary dir (127.0.0.1 only) and destroys it at
the end, also on an error or Ctrl-C. Each prints a table and writes its figures as JSON
(default bench-results/NAME.json, --out to override).

Adding a benchmark: a module here with `def bench_x(args)` declared by
@subcommand(name, help, *arg(...)) (common.py), which prints its table and returns a JSON-able
dict with at least "goals": [goal(...), ...] (empty if it has none); then name the module in
BENCHMARKS below. `all` runs the names in ALL.
"""
import argparse
import os
import signal
import sys

import psutil
from rich.table import Table

from . import drain, durability, failover, fuzz, groups, idle, membership, move, up, writes
from .common import benchmarks, console, fmt, met, write_json

BENCHMARKS = benchmarks(membership, up, writes, idle, groups, failover, move, drain, durability, fuzz)
ALL = ("membership", "up", "writes", "idle")  # what `all` runs, in this order


def build_parser():
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="name", required=True)
    for name, (fn, help_, arguments) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        for flags, kwargs in arguments:
            p.add_argument(*flags, **kwargs)
        p.add_argument("--out", help=f"JSON output (default bench-results/{name}.json)")
        p.set_defaults(fn=fn)
    p = sub.add_parser("all", help=f"run {', '.join(ALL)} with their defaults")
    p.add_argument("--runs", type=int, help="override --runs where a benchmark has it")
    p.add_argument("--out-dir", default="bench-results", help="where NAME.json go (default bench-results)")
    p.set_defaults(fn=None)
    return parser


def run_one(args, out=None):
    console.rule(f"[bold]{args.name}")
    load = os.getloadavg()
    busy = psutil.cpu_percent(interval=1.0)
    console.print(f"[dim]before: CPUs {busy:.0f}% busy over 1 s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
                  f"({os.cpu_count()} CPUs)[/]")
    if busy > 20:
        console.print("[yellow]other processes are using the CPUs: timing figures will be pessimistic "
                      "(the writes table shows what others used during each run as 'others')[/]")
    result = dict(args.fn(args), loadavg_before=load, cpu_busy_percent_before=busy)
    write_json(out or args.out or os.path.join("bench-results", f"{args.name}.json"), args.name, result)
    return result


def _terminate(signum, frame):
    raise KeyboardInterrupt  # so that every try/finally destroys its cluster


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.name != "all":
            return 0 if all(g["met"] for g in run_one(args)["goals"]) else 1
        goals = []
        for name in ALL:
            has_runs = any("--runs" in flags for flags, _ in BENCHMARKS[name][2])
            extra = ["--runs", str(args.runs)] if args.runs and has_runs else []
            result = run_one(parser.parse_args([name, *extra]), os.path.join(args.out_dir, f"{name}.json"))
            goals += [dict(g, bench=name) for g in result["goals"]]
        table = Table("bench", "goal", "target", "measured", "met", title="goals")
        for g in goals:
            table.add_row(g["bench"], g["what"], fmt(g["goal"], g["unit"]), fmt(g["measured"], g["unit"]),
                          met(g["met"]))
        console.rule("[bold]summary")
        console.print(table)
        write_json(os.path.join(args.out_dir, "all.json"), "all", {"goals": goals})
        return 0 if all(g["met"] for g in goals) else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; the benchmark clusters were destroyed[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
