"""CPU and memory of each daemon of an idle quorate cluster."""
import time

import psutil
from rich.table import Table

from .common import arg, console, names_of, subcommand, temp_cluster, vars_of


@subcommand("idle", "CPU%% and RSS of each daemon of an idle quorate cluster",
            arg("--nodes", type=int, default=5), arg("--window", type=float, default=10.0),
            arg("--settle", type=float, default=2.0, help="seconds to wait after quorum before sampling"))
def bench_idle(args):
    with temp_cluster(args.nodes) as cluster:
        time.sleep(args.settle)
        procs = {n: psutil.Process(cluster.pid(n)) for n in names_of(cluster)}
        before = {n: p.cpu_times() for n, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(args.window)
        after = {n: p.cpu_times() for n, p in procs.items()}
        elapsed = time.monotonic() - t0
        rows = []
        for n, p in procs.items():
            cpu = (after[n].user + after[n].system - before[n].user - before[n].system) / elapsed * 100
            rows.append({"node": n, "pid": p.pid, "cpu_percent": cpu, "rss_mib": p.memory_info().rss / 2**20,
                         "threads": p.num_threads()})
    table = Table("daemon", "pid", "CPU %", "RSS MiB", "threads",
                  title=f"idle: {args.nodes} nodes, quorate, {elapsed:.1f} s window (CPU % of one core)")
    for r in rows:
        table.add_row(r["node"], str(r["pid"]), f"{r['cpu_percent']:.2f}", f"{r['rss_mib']:.1f}", str(r["threads"]))
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("cpu_percent", "rss_mib")}
    table.add_row("[bold]mean[/]", "", f"[bold]{mean['cpu_percent']:.2f}[/]", f"[bold]{mean['rss_mib']:.1f}[/]", "")
    console.print(table)
    return {"params": vars_of(args), "window": elapsed, "daemons": rows, "mean": mean, "goals": []}
