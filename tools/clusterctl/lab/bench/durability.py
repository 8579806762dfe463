"""tools/bench durability: many clients writing, kill -9 of every daemon at once (or of a
majority) in the middle, restart; every write that was acknowledged must still be there.

Each client adds unique keys to the Cluster's other_config and remembers the ones whose call
returned success. After the restart one more write through a node is a barrier (its answer
comes once that node applied everything before it); that node's other_config is then read
and every acknowledged key looked up."""
import asyncio
import itertools
import os
import signal
import time
from collections import Counter

from rich.table import Table

from clusterd.errors import ClusterError

from .common import (arg, async_client, console, names_of, run_async, subcommand, sync_client, temp_cluster,
                    vars_of, wait_all_live, goal)


async def _write_until(cluster, names, ref, clients_n, stop, run):
    """clients_n clients round-robin over the nodes, each adding keys until stop is set."""
    acked, errors, counter = set(), Counter(), itertools.count()

    async def client(k):
        c = async_client(cluster, names[k % len(names)], timeout=5.0)
        try:
            await c.login()
            while not stop.is_set():
                key = f"d{run}-{k}-{next(counter)}"
                try:
                    await c.Cluster.add_to_other_config(ref, key, "v")
                    acked.add(key)
                except ClusterError as e:
                    errors[e.code] += 1
                except (OSError, asyncio.TimeoutError, ConnectionError) as e:
                    errors[type(e).__name__] += 1
                    return  # its daemon is gone
        except (OSError, asyncio.TimeoutError, ConnectionError, ClusterError) as e:
            errors[type(e).__name__] += 1
        finally:
            await c.close()
    tasks = [asyncio.ensure_future(client(k)) for k in range(clients_n)]
    return tasks, acked, errors


async def _one_run(cluster, names, ref, victims, clients_n, before_kill, run):
    stop = asyncio.Event()
    tasks, acked, errors = await _write_until(cluster, names, ref, clients_n, stop, run)
    await asyncio.sleep(before_kill)
    acked_at_kill = len(acked)
    for name in victims:  # all at once: no await in between
        os.kill(cluster.pid(name), signal.SIGKILL)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return acked, acked_at_kill, errors


def _check(cluster, names, ref, acked, run):
    with sync_client(cluster, names[0], 30.0) as c:
        c.Cluster.add_to_other_config(ref, f"barrier-{run}", "v")
        present = c.Cluster.get_other_config(ref)
    return sorted(k for k in acked if k not in present)


@subcommand("durability", "clients writing, kill -9 of every daemon (or a majority), restart: "
            "acknowledged writes missing (must be 0)",
            arg("--runs", type=int, default=5, help="repetitions per kind of kill (default 5)"),
            arg("--nodes", type=int, default=3), arg("--clients", type=int, default=16),
            arg("--seconds", type=float, default=2.0, help="writing before the kill, s (default 2)"),
            arg("--kinds", default="all,majority", help="which daemons are killed (default all,majority)"))
def bench_durability(args):
    rows, goals = [], []
    with temp_cluster(args.nodes) as cluster:
        names = names_of(cluster)
        with sync_client(cluster, names[0]) as c:
            ref = c.Cluster.get_all()[0]
        for kind in args.kinds.split(","):
            victims = names if kind == "all" else names[:args.nodes // 2 + 1]
            for run in range(args.runs):
                tag = f"{kind}{run}"
                t0 = time.monotonic()
                acked, at_kill, errors = run_async(
                    _one_run(cluster, names, ref, victims, args.clients, args.seconds, tag), 120)
                for name in victims:
                    cluster.start(name)
                run_async(wait_all_live(cluster, args.nodes), 120)
                recovered = time.monotonic() - t0
                missing = _check(cluster, names, ref, acked, tag)
                rows.append({"kind": kind, "run": run + 1, "acknowledged": len(acked),
                             "acknowledged_at_kill": at_kill, "missing": len(missing),
                             "missing_keys": missing[:20], "errors": dict(errors),
                             "seconds_to_quorate": recovered})
                console.print(f"[dim]{kind} run {run + 1}: {len(acked)} acknowledged, "
                              f"{len(missing)} missing[/]")
    t = Table("killed", "runs", "acknowledged (total)", "missing", title=(
        f"durability: {args.nodes} nodes, {args.clients} clients, kill -9 after {args.seconds} s of writes"))
    for kind in args.kinds.split(","):
        mine = [r for r in rows if r["kind"] == kind]
        missing = sum(r["missing"] for r in mine)
        t.add_row(kind, str(len(mine)), str(sum(r["acknowledged"] for r in mine)), str(missing))
        goals.append(goal(f"kill -9 of {kind}: acknowledged writes missing", 0, missing, missing == 0,
                          unit="writes"))
    console.print(t)
    return {"params": vars_of(args), "runs": rows, "goals": goals}
