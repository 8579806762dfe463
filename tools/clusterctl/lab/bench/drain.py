"""tools/bench drain: 5 nodes; one node holds N groups (one dummy resource each); time from
Node.pause(drain=true) to drain Completed, and to every group Online elsewhere."""
import asyncio
import time

from rich.table import Table

from .common import arg, close_all, console, fmt, goal, logged_in, names_of, run_async, subcommand, temp_cluster, vars_of
from .groups import pipelined

GOAL_1000 = 10.0  # seconds to drain 1,000 groups


async def _until(pred, limit, interval=0.05):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = await pred()
        if value:
            return value
        await asyncio.sleep(interval)
    return None


async def _one_size(clients, node, size, prefix, concurrency, limit):
    cs = list(clients.values())
    names = [f"{prefix}{i:05d}" for i in range(size)]
    for step in (lambda i, n: cs[i % len(cs)].Group.create(n),
                 lambda i, n: cs[i % len(cs)].Resource.create(n, f"{n}-r", "dummy", {}),
                 lambda i, n: cs[i % len(cs)].Group.set_preferred_owners(n, [node]),
                 lambda i, n: cs[i % len(cs)].Group.online(n)):
        _, errors = await pipelined([lambda i=i, n=n, step=step: step(i, n) for i, n in enumerate(names)], concurrency)
        if errors:
            raise RuntimeError(f"setting up {size} groups: {errors[0]}")
    c = clients[node]

    async def all_online_on(owner_ok):
        records = [g for g in await c.Group.get_all_records() if g["name"].startswith(prefix)]
        return len(records) == size and all(g["state"] == "Online" and owner_ok(g["owner"]) for g in records)
    if not await _until(lambda: all_online_on(lambda o: o == node), limit, 0.2):
        raise RuntimeError(f"{size} groups did not come Online on {node}")
    t0 = time.monotonic()
    r = await c.Node.pause(node, True, 0)
    assert r["code"] == 0x3E5, r
    rec = await _until(lambda: _ended(c, node), limit)
    completed = time.monotonic() - t0 if rec else None
    online = await _until(lambda: all_online_on(lambda o: o != node), limit, 0.1)
    all_online = time.monotonic() - t0 if online else None
    await c.Node.resume(node, "none")
    return {"groups": size, "drain_completed_s": completed, "all_online_elsewhere_s": all_online,
            "drain_status": rec["drain_status"] if rec else "InProgress (timed out)", "detail": rec and rec["detail"]}


async def _ended(c, node):
    rec = await c.Node.get_pause_record(node)
    return rec if rec["drain_status"] != "InProgress" else None


async def _run(cluster, sizes, concurrency, limit):
    names = names_of(cluster)
    clients = await logged_in(cluster, names, timeout=60.0)
    try:
        node = names[1]
        return [await _one_size(clients, node, size, f"s{size}-", concurrency, limit) for size in sizes]
    finally:
        await close_all(clients)


@subcommand("drain", "5 nodes: pause --drain of a node holding 1, 100, 1,000 groups -> drain Completed",
            arg("--sizes", default="1,100,1000", help="groups on the drained node (default 1,100,1000)"),
            arg("--nodes", type=int, default=5, help="cluster size (default 5)"),
            arg("--concurrency", type=int, default=128, help="setup calls in flight (default 128)"),
            arg("--limit", type=float, default=300.0, help="seconds to wait for each step (default 300)"))
def bench_drain(args):
    sizes = [int(x) for x in args.sizes.split(",")]
    with temp_cluster(args.nodes) as cluster:
        rows = run_async(_run(cluster, sizes, args.concurrency, args.limit), limit=len(sizes) * (3 * args.limit) + 600)
    t = Table("groups", "drain status", "pause -> Completed", "pause -> all Online elsewhere",
              title=f"drain: {args.nodes} nodes, one dummy resource per group")
    for r in rows:
        t.add_row(str(r["groups"]), r["drain_status"], fmt(r["drain_completed_s"]), fmt(r["all_online_elsewhere_s"]))
    console.print(t)
    goals = [goal(f"{r['groups']} groups: pause -> drain Completed", GOAL_1000, r["drain_completed_s"],
                  r["drain_completed_s"] is not None and r["drain_completed_s"] <= GOAL_1000)
             for r in rows if r["groups"] == 1000]
    return {"params": vars_of(args), "sizes": rows, "goals": goals}
