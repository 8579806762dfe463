"""Committed writes: pipelined throughput and sequential latency, via the leader and a follower."""
import asyncio
import itertools
import time
from collections import Counter

from rich.table import Table

from clusterd.errors import ClusterError

from .common import (arg, async_client, console, cpu_percent, cpu_seconds, fmt, goal, leader_of, met,
                     names_of, run_async, subcommand, summary, sync_client, temp_cluster, vars_of)


class CasWriter:
    """Writes through Cluster.cas_other_config on one key, each expecting the value it wrote
    before, so every write swaps and other_config stays at one key per writer."""

    def __init__(self, key):
        self.key, self.last, self.swapped = key, None, 0

    def settle(self, result, new):
        if result["swapped"]:
            self.last, self.swapped = new, self.swapped + 1
        else:  # someone else's value (or a retried write that had applied): follow it
            self.last = result["value"]


async def _pipelined(cluster, name, ref, total, concurrency, cap):
    """`concurrency` writers in flight on one connection until `total` writes or `cap` s."""
    c = async_client(cluster, name, timeout=15.0)
    await c.login()
    with sync_client(cluster, name) as s:
        before = s.Node.status()["commit_index"]
    counter, done, errors = itertools.count(), [0], Counter()
    writers = [CasWriter(f"bench-{name}-{w}") for w in range(concurrency)]
    cpu0 = cpu_seconds(cluster)
    t0 = time.monotonic()
    end = t0 + cap

    async def run(w):
        while time.monotonic() < end:
            i = next(counter)
            if i >= total:
                return
            try:
                w.settle(await c.Cluster.cas_other_config(ref, w.key, w.last, str(i)), str(i))
                done[0] += 1
            except ClusterError as e:
                errors[e.code] += 1
            except (OSError, asyncio.TimeoutError, ConnectionError) as e:
                errors[type(e).__name__] += 1

    try:
        await asyncio.gather(*(run(w) for w in writers))
    finally:
        await c.close()
    elapsed = time.monotonic() - t0
    cpu = cpu_percent(cpu0, cpu_seconds(cluster), elapsed)
    with sync_client(cluster, name) as s:
        entries = s.Node.status()["commit_index"] - before
    return {"via": name, "writes": done[0], "swapped": sum(w.swapped for w in writers), "seconds": elapsed,
            "per_second": done[0] / elapsed, "errors": dict(errors), "log_entries": entries,
            "writes_per_entry": done[0] / entries if entries else None, "cpu_percent": cpu}


def _sequential(cluster, name, ref, count):
    lat, errors, w = [], Counter(), CasWriter(f"bench-seq-{name}")
    with sync_client(cluster, name) as c:
        c.login()
        cpu0, start = cpu_seconds(cluster), time.monotonic()
        for i in range(count):
            t0 = time.perf_counter()
            try:
                w.settle(c.Cluster.cas_other_config(ref, w.key, w.last, str(i)), str(i))
                lat.append(time.perf_counter() - t0)
            except ClusterError as e:
                errors[e.code] += 1
        cpu = cpu_percent(cpu0, cpu_seconds(cluster), time.monotonic() - start)
    return {"via": name, "summary": summary(lat), "swapped": w.swapped, "errors": dict(errors), "cpu_percent": cpu}


@subcommand("writes", "committed writes/s pipelined (via leader, via follower); sequential latency",
            arg("--nodes", type=int, default=3), arg("--total", type=int, default=20000),
            arg("--concurrency", type=int, default=256), arg("--cap", type=float, default=30.0,
                                                               help="time cap per pipelined run, s"),
            arg("--sequential", type=int, default=2000),
            arg("--goal-rate", type=float, default=5000.0), arg("--goal-p50", type=float, default=0.003),
            arg("--goal-p99", type=float, default=0.010))
def bench_writes(args):
    with temp_cluster(args.nodes) as cluster:
        names = names_of(cluster)
        leader = leader_of(cluster, names)
        follower = next(n for n in names if n != leader)
        with sync_client(cluster, leader) as c:
            ref = c.Cluster.get_all()[0]
        _sequential(cluster, leader, ref, 100)  # warm up: connections, first entries
        piped = [run_async(_pipelined(cluster, who, ref, args.total, args.concurrency, args.cap))
                 for who in (leader, follower)]
        seq = [_sequential(cluster, who, ref, args.sequential) for who in (leader, follower)]
        still_leader = leader_of(cluster, names)
    table = Table("measurement", "via", "writes", "value", "goal", "met", "notes",
                  title=f"writes: {args.nodes} nodes, Cluster.cas_other_config, one key per writer")
    goals = []
    for role, p in zip(("leader", "follower"), piped):
        ok = p["per_second"] >= args.goal_rate
        table.add_row(f"pipelined ({args.concurrency} in flight)", f"{role} {p['via']}", f"{p['writes']:,}",
                      fmt(p["per_second"], "/s"), f"≥ {args.goal_rate:,.0f}/s", met(ok),
                      f"{p['seconds']:.1f} s, {p['writes_per_entry'] or 0:.1f} writes/log entry; CPU % "
                      + ", ".join(f"{k} {v:.0f}" for k, v in p["cpu_percent"].items())
                      + (f"; errors {p['errors']}" if p["errors"] else ""))
        goals.append(goal(f"pipelined writes/s via {role}", args.goal_rate, p["per_second"], ok, "/s"))
    for role, s in zip(("leader", "follower"), seq):
        for q, target in (("p50", args.goal_p50), ("p99", args.goal_p99)):
            ok = s["summary"][q] is not None and s["summary"][q] <= target
            table.add_row(f"sequential latency {q}", f"{role} {s['via']}", f"{s['summary']['n']:,}",
                          fmt(s["summary"][q], "ms"), f"≤ {target * 1000:.0f} ms", met(ok),
                          f"min {fmt(s['summary']['min'], 'ms')}, max {fmt(s['summary']['max'], 'ms')}"
                          + ("; CPU % " + ", ".join(f"{k} {v:.0f}" for k, v in s["cpu_percent"].items())
                             if q == "p50" else "")
                          + (f"; errors {s['errors']}" if s["errors"] else ""))
            goals.append(goal(f"sequential write {q} via {role}", target, s["summary"][q], ok, "ms"))
    console.print(table)
    if still_leader != leader:
        console.print(f"[yellow]the leader changed during the run: {leader} → {still_leader}[/]")
    return {"params": vars_of(args), "leader": leader, "follower": follower, "leader_after": still_leader,
            "pipelined": piped, "sequential": seq, "goals": goals}
