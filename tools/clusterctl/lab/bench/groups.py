"""tools/bench groups: many groups with one dummy resource each, created and brought online."""
import asyncio
import time

import psutil
from rich.table import Table

from .common import arg, console, goal, logged_in, close_all, names_of, run_async, subcommand, temp_cluster, vars_of


async def pipelined(calls, concurrency):
    """Run the coroutine factories in `calls` with at most `concurrency` in flight; count errors."""
    sem = asyncio.Semaphore(concurrency)
    errors = []

    async def one(make):
        async with sem:
            try:
                return await make()
            except Exception as e:  # counted and reported, never hidden
                errors.append(repr(e))
    results = await asyncio.gather(*(one(m) for m in calls))
    return results, errors


async def _run(cluster, n_groups, concurrency, limit):
    names = names_of(cluster)
    clients = await logged_in(cluster, names, timeout=60.0)
    cs = list(clients.values())
    try:
        t0 = time.monotonic()
        _, errors = await pipelined(
            [lambda i=i: cs[i % len(cs)].Group.create(f"g{i:05d}") for i in range(n_groups)], concurrency)
        _, errors2 = await pipelined(
            [lambda i=i: cs[i % len(cs)].Resource.create(f"g{i:05d}", f"r{i:05d}", "dummy", {})
             for i in range(n_groups)], concurrency)
        created = time.monotonic() - t0
        t1 = time.monotonic()
        _, errors3 = await pipelined(
            [lambda i=i: cs[i % len(cs)].Group.online(f"g{i:05d}") for i in range(n_groups)], concurrency)
        accepted = time.monotonic() - t1
        online, deadline = 0, time.monotonic() + limit
        while time.monotonic() < deadline:
            records = await cs[0].Group.get_all_records()
            online = sum(1 for g in records if g["state"] == "Online" and not g["special"])
            if online >= n_groups:
                break
            await asyncio.sleep(0.5)
        all_online = time.monotonic() - t1
        rss = {n: psutil.Process(cluster.pid(n)).memory_info().rss / 2**20 for n in names}
        return {"created_s": created, "create_commands_per_s": 2 * n_groups / created,
                "online_accepted_s": accepted, "online_commands_per_s": n_groups / accepted,
                "all_online_s": all_online if online >= n_groups else None, "online": online,
                "rss_mib": rss, "errors": (errors + errors2 + errors3)[:10],
                "error_count": len(errors) + len(errors2) + len(errors3)}
    finally:
        await close_all(clients)


@subcommand("groups", "create N groups with one dummy resource each on 3 nodes, bring them online",
            arg("--groups", type=int, default=10000, help="how many groups (default 10000)"),
            arg("--concurrency", type=int, default=256, help="calls in flight (default 256)"),
            arg("--limit", type=float, default=300.0, help="seconds to wait for all Online (default 300)"))
def bench_groups(args):
    with temp_cluster(3) as cluster:
        r = run_async(_run(cluster, args.groups, args.concurrency, args.limit), limit=args.limit + 600)
    t = Table("figure", "value", title=f"groups: {args.groups} groups x 1 dummy resource, 3 nodes")
    t.add_row("create (group + resource commands)", f"{r['created_s']:.1f} s, {r['create_commands_per_s']:,.0f} commands/s")
    t.add_row("online commands accepted", f"{r['online_accepted_s']:.1f} s, {r['online_commands_per_s']:,.0f}/s")
    t.add_row("time to all Online (from the first online)",
              f"{r['all_online_s']:.1f} s" if r["all_online_s"] else f"not reached: {r['online']} Online")
    for n, v in r["rss_mib"].items():
        t.add_row(f"RSS {n}", f"{v:.0f} MiB")
    t.add_row("errors", str(r["error_count"]))
    console.print(t)
    goals = [goal("all Online", "<= 60 s", r["all_online_s"], r["all_online_s"] is not None and r["all_online_s"] <= 60),
             goal("RSS per daemon", "< 150 MiB", max(r["rss_mib"].values()), max(r["rss_mib"].values()) < 150, "MiB")]
    return {"params": vars_of(args), **r, "goals": goals}
