"""`clusterctl up`: wall time until it returns with the cluster quorate."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from rich.table import Table

from ..launcher import LocalCluster
from .common import RUNS, arg, console, fmt, goal, met, subcommand, summary, vars_of


def clusterctl_path():
    here = os.path.join(os.path.dirname(sys.executable), "clusterctl")
    return here if os.path.exists(here) else shutil.which("clusterctl")


@subcommand("up", "wall time of `clusterctl up --nodes N` until it returns (quorate)",
            RUNS, arg("--nodes", type=int, default=3), arg("--goal", type=float, default=3.0))
def bench_up(args):
    ctl = clusterctl_path()
    if not ctl:
        raise SystemExit("bench: clusterctl not found (neither next to this python nor on PATH)")
    times, runs = [], []
    for i in range(args.runs):
        tmp = tempfile.mkdtemp(prefix="clusterd-bench-up-")
        d = os.path.join(tmp, "cluster")
        try:
            t0 = time.monotonic()
            r = subprocess.run([ctl, "up", "--nodes", str(args.nodes), "--dir", d],
                               capture_output=True, text=True, timeout=120)
            wall = time.monotonic() - t0
            if r.returncode != 0:
                console.print(f"[red]run {i + 1}: clusterctl up failed ({r.returncode}): {r.stderr.strip()[-400:]}[/]")
            else:
                times.append(wall)
            runs.append({"run": i + 1, "wall": wall, "returncode": r.returncode})
            console.print(f"[dim]run {i + 1}: {fmt(wall)}[/]")
        finally:
            subprocess.run([ctl, "down", "--dir", d], capture_output=True, timeout=60)
            if os.path.exists(os.path.join(d, "cluster.json")):
                LocalCluster(d).destroy()
            shutil.rmtree(tmp, ignore_errors=True)
    s = summary(times)
    ok = len(times) == args.runs and s["p50"] <= args.goal
    table = Table("command", "runs", "min", "median", "p95", "max", "goal", "met",
                  title="up: `clusterctl up` until it returns (quorate), wall time")
    table.add_row(f"clusterctl up --nodes {args.nodes}", f"{len(times)}/{args.runs}", fmt(s["min"]), fmt(s["p50"]),
                  fmt(s["p95"]), fmt(s["max"]), f"≤ {args.goal:.1f} s", met(ok))
    console.print(table)
    g = goal(f"clusterctl up --nodes {args.nodes} (median)", args.goal, s["p50"], ok)
    g["summary"] = s
    return {"params": vars_of(args), "runs": runs, "goals": [g]}
