"""tools/bench failover: kill -9 of a group's owner -> its HTTP port answers from the new owner."""
import signal
import sys
import time
import urllib.request

from rich.table import Table

from clusterd.quorum import effective_token

from .bench import (COEF, TOKEN, arg, console, fmt, goal, names_of, run_async, subcommand, summary,
                    sync_client, temp_cluster, vars_of, wait_all_live)
from .launcher import free_ports


def _answers(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.2) as r:
            return r.status == 200
    except OSError:
        return False


def _one_size(n, runs, token, coefficient, kill_leader):
    times = []
    with temp_cluster(n, token, coefficient) as cluster:
        (port,) = free_ports(1, 0)
        names = names_of(cluster)
        with sync_client(cluster, names[0]) as c:
            c.Group.create("web")
            c.Group.set_failover_policy("web", {"threshold": 10 * runs})  # many failovers, on purpose
            c.Resource.create("web", "http", "process", {
                "args": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                "check_tcp": f"127.0.0.1:{port}", "stop_timeout": 3})
            c.Operation.wait(c.Group.online("web")["handle"], 60)
        for _ in range(runs):
            st = cluster.status()
            target = st["cluster"]["leader"] if kill_leader else None
            with sync_client(cluster, next(x for x in names if cluster.pid(x))) as c:
                if target:  # make the leader the owner first
                    c.Group.set_preferred_owners("web", [target])
                g = c.Group.get_record("web")
                if target and g["owner"] != target:
                    c.Operation.wait(c.Group.offline("web")["handle"], 60)
                    c.Operation.wait(c.Group.online("web")["handle"], 60)
                    g = c.Group.get_record("web")
            owner, old_pid = g["owner"], g["resources"][0]["pid"]
            while not _answers(port):
                time.sleep(0.01)
            t0 = time.monotonic()
            cluster.kill(owner, signal.SIGKILL)
            survivor = next(x for x in names if x != owner)
            deadline = t0 + 60
            with sync_client(cluster, survivor) as c:
                while time.monotonic() < deadline:
                    r = c.Group.get_record("web")["resources"][0]
                    if r["pid"] not in (None, old_pid) and _answers(port):
                        times.append(time.monotonic() - t0)
                        break
                    time.sleep(0.01)
                c.Group.set_preferred_owners("web", [])
            cluster.start(owner)
            run_async(wait_all_live(cluster, n))
    return times


@subcommand("failover", "kill -9 of the owner -> the group's HTTP port answers from the new owner",
            arg("--runs", type=int, default=20, help="repetitions per size (default 20)"), TOKEN, COEF,
            arg("--sizes", default="3,5", help="cluster sizes (default 3,5)"),
            arg("--leader", action="store_true", help="the killed owner is also the Raft leader"))
def bench_failover(args):
    rows, goals = [], []
    for n in [int(x) for x in args.sizes.split(",")]:
        times = _one_size(n, args.runs, args.token, args.coefficient, args.leader)
        s = summary(times)
        target = effective_token(args.token, args.coefficient, n) + 0.35
        rows.append({**s, "n": n, "runs": len(times), "goal": target})
        goals.append(goal(f"{n} nodes: kill -9 of the {'leader and ' if args.leader else ''}owner -> port answers (median)",
                          target, s["p50"], s["p50"] is not None and s["p50"] <= target))
    t = Table("N", "runs", "min", "median", "p95", "max", "goal", title=f"failover: kill -9 of the "
              f"{'leader and ' if args.leader else ''}owner, token {args.token} s, coefficient {args.coefficient} s")
    for r in rows:
        t.add_row(str(r["n"]), f"{r['runs']}/{args.runs}", fmt(r["min"]), fmt(r["p50"]), fmt(r["p95"]),
                  fmt(r["max"]), f"<= {r['goal']:.2f} s")
    console.print(t)
    return {"params": vars_of(args), "sizes": rows, "goals": goals}
