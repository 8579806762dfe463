"""tools/bench move: Group.move (MoveClusterGroupEx) accepted -> Online at the destination.

Three nodes, groups of one dummy resource. "1 group": one move at a time, repeated, each from
its owner to the next node. "N groups": N moves to one destination submitted together; per
group from its acceptance to its operation's success, and the whole batch from the first
acceptance to the last success. A move's operation succeeds once the group is Online on the
destination (Operation.wait polls every 50 ms on the server: figures are that coarse).
"""
import asyncio
import time

from rich.table import Table

from .common import arg, close_all, console, fmt, logged_in, names_of, run_async, subcommand, summary, temp_cluster, vars_of


async def _make(c, name, owner):
    await c.Group.create(name)
    await c.Group.set_preferred_owners(name, [owner])
    await c.Resource.create(name, f"{name}-r", "dummy", {})
    op = await c.Operation.wait((await c.Group.online(name))["handle"], 120)
    assert op["status"] == "succeeded", op


async def _move(c, name, to):
    """(seconds from accepted to Online at `to`, accepted monotonic time) or an error string."""
    pending = await c.Group.move(name, to, 0, {})
    accepted = time.monotonic()
    op = await c.Operation.wait(pending["handle"], 120)
    if op["status"] != "succeeded":
        return f"{name}: {op['status']} {op.get('error')}"
    return time.monotonic() - accepted, accepted


async def _run(cluster, runs, n_groups):
    names = names_of(cluster)
    clients = await logged_in(cluster, names, timeout=150.0)
    c = clients[names[0]]
    errors = []
    try:
        await _make(c, "single", names[0])
        single = []
        for i in range(runs):
            r = await _move(c, "single", names[(i + 1) % len(names)])
            single.append(r[0]) if isinstance(r, tuple) else errors.append(r)
        batch = [f"b{i:03d}" for i in range(n_groups)]
        sem = asyncio.Semaphore(32)

        async def make(name):
            async with sem:
                await _make(c, name, names[0])
        await asyncio.gather(*(make(n) for n in batch))
        t0 = time.monotonic()
        results = await asyncio.gather(*(_move(clients[names[i % len(names)]], n, names[1])
                                         for i, n in enumerate(batch)))
        done = time.monotonic()
        per_group = [r[0] for r in results if isinstance(r, tuple)]
        errors += [r for r in results if not isinstance(r, tuple)]
        first = min((r[1] for r in results if isinstance(r, tuple)), default=t0)
        return {"single": summary(single), "batch": summary(per_group), "batch_total_s": done - first,
                "errors": errors[:10], "error_count": len(errors)}
    finally:
        await close_all(clients)


@subcommand("move", "Group.move of 1 group (repeated) and of N groups at once: accepted -> Online at the destination",
            arg("--runs", type=int, default=20, help="moves of the single group (default 20)"),
            arg("--groups", type=int, default=100, help="groups moved at once (default 100)"))
def bench_move(args):
    with temp_cluster(3) as cluster:
        r = run_async(_run(cluster, args.runs, args.groups), limit=900)
    t = Table("moves", "count", "min", "median", "p95", "max", title="move: accepted -> Online at the destination, "
              "3 nodes, dummy resources")
    for label, s in ((f"1 group, {args.runs} times", r["single"]), (f"{args.groups} groups at once (each)", r["batch"])):
        t.add_row(label, str(s["n"]), fmt(s["min"]), fmt(s["p50"]), fmt(s["p95"]), fmt(s["max"]))
    t.add_row(f"{args.groups} groups at once (all)", "1", "", fmt(r["batch_total_s"]), "", "")
    t.add_row("errors", str(r["error_count"]), "", "", "", "")
    console.print(t)
    return {"params": vars_of(args), **r, "goals": []}
