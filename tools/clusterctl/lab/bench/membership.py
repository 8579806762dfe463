"""kill -9 one node (or all but one): how soon the survivors see it."""
import asyncio
import os
import random
import signal
import time

from rich.table import Table

from clusterd.quorum import effective_token, quorum

from .common import (COEF, RUNS, TOKEN, arg, close_all, console, fmt, goal, leader_of, logged_in, met,
                     names_of, poll_until, run_async, subcommand, summary, temp_cluster, vars_of,
                     wait_all_live)


async def _kill_and_watch(cluster, victims, watchers, pred, crossing, interval, limit):
    """Kill victims (SIGKILL, in order); poll watchers until pred(status). Seconds from the
    kill of victims[crossing] to each watcher's first satisfying answer (None: not seen)."""
    clients = await logged_in(cluster, watchers)
    try:
        await asyncio.sleep(random.uniform(0, 0.25))  # a random phase against the heartbeats
        pids = [cluster.pid(v) for v in victims]
        kills = []
        for pid in pids:
            kills.append(time.monotonic())
            os.kill(pid, signal.SIGKILL)
        t0 = kills[crossing]
        seen = await asyncio.gather(*(poll_until(c, pred, t0 + limit, interval) for c in clients.values()))
        return {w: (t - t0 if t else None) for w, t in zip(clients, seen)}
    finally:
        await close_all(clients)


@subcommand("membership", "kill -9 → survivors see the new live_hosts; lone survivor → not quorate",
            RUNS, TOKEN, COEF, arg("--sizes", default="3,5", help="cluster sizes (default 3,5)"),
            arg("--interval", type=float, default=0.01, help="status poll interval, s (default 0.01)"))
def bench_membership(args):
    rows, goals, runs = [], [], []
    for n in [int(x) for x in args.sizes.split(",")]:
        eff = effective_token(args.token, args.coefficient, n)
        target = eff + 0.25
        limit = eff + 10.0
        with temp_cluster(n, args.token, args.coefficient) as cluster:
            names = names_of(cluster)
            for case in ("kill one", "lone survivor"):
                times = []
                for i in range(args.runs):
                    leader = leader_of(cluster, names)
                    if case == "kill one":
                        victims = [names[i % n]]
                        watchers = [x for x in names if x not in victims]
                        pred, crossing = (lambda s, n=n: s["live_hosts"] == n - 1), 0
                    else:
                        watchers = [names[i % n]]
                        victims = [x for x in names if x not in watchers]
                        pred, crossing = (lambda s: not s["is_quorate"]), n - quorum(n, n)
                    seen = run_async(_kill_and_watch(cluster, victims, watchers, pred, crossing,
                                                     args.interval, limit))
                    worst = None if None in seen.values() else max(seen.values())
                    runs.append({"nodes": n, "case": case, "run": i + 1, "killed": victims,
                                 "leader_killed": leader in victims, "per_survivor": seen, "time": worst})
                    console.print(f"[dim]{n} nodes, {case}, run {i + 1}: killed {','.join(victims)}"
                                  f"{' (leader)' if leader in victims else ''} → "
                                  f"{fmt(worst)}  {({k: round(v, 3) if v else v for k, v in seen.items()})}[/]")
                    if worst is not None:
                        times.append(worst)
                    for v in victims:
                        cluster.start(v)
                    run_async(wait_all_live(cluster, n))
                s = summary(times)
                ok = len(times) == args.runs and s["p50"] <= target
                what = "survivors report live_hosts N-1" if case == "kill one" else "lone survivor reports not quorate"
                rows.append([str(n), what, f"{len(times)}/{args.runs}", fmt(s["min"]), fmt(s["p50"]), fmt(s["p95"]),
                             fmt(s["max"]), f"≤ {target:.2f} s", met(ok)])
                goals.append(goal(f"{n} nodes: {what} (median)", target, s["p50"], ok))
                goals[-1].update(summary=s, effective_token=eff)
    table = Table("N", "after kill -9", "runs", "min", "median", "p95", "max", "goal", "met",
                  title=f"membership: token {args.token} s, coefficient {args.coefficient} s; "
                        "goal = effective token + 0.25 s (on the median)")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    return {"params": vars_of(args), "runs": runs, "goals": goals}
