"""tools/bench failover: kill -9 of a group's owner -> its HTTP port answers from the new owner.

With --partition (root, nftables): each node in its own network namespace, the watchdog fence,
and the owner cut off from the others both ways instead of killed; the time is from the cut to
the port answering on the majority side. The cut is healed after each run.

With --resource-failure: the owner stays up, and the group's resource fails past its restart
policy instead (its restart threshold is 0, so its first failure is past it: kill -9 of the
resource's own process); the time is from that kill to the port answering from the new owner
(the record names another owner and another pid)."""
import os
import signal
import sys
import time
import urllib.request

from rich.table import Table

from clusterd.quorum import effective_token

from .common import (COEF, TOKEN, arg, console, fmt, goal, names_of, run_async, subcommand, summary,
                    sync_client, temp_cluster, vars_of, wait_all_live)
from .. import netns
from ..launcher import free_ports


def _answers(port, host="127.0.0.1"):
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=0.2) as r:
            return r.status == 200
    except OSError:
        return False


HTTP_PORT = 8080  # with --partition, inside each node's own namespace


def _web_group(cluster, names, runs, port, bind, restarts=None):
    with sync_client(cluster, names[0]) as c:
        c.Group.create("web")
        c.Group.set_failover_policy("web", {"threshold": 10 * runs})  # many failovers, on purpose
        c.Resource.create("web", "http", "process", {
            "args": [sys.executable, "-m", "http.server", "--bind", bind, str(port)],
            "check_tcp": f"127.0.0.1:{port}", "stop_timeout": 3})  # the node's own loopback
        if restarts is not None:
            c.Resource.set_restart_policy(c.Group.get_record("web")["resources"][0]["id"], {"threshold": restarts})
        c.Operation.wait(c.Group.online("web")["handle"], 60)


def _place_on(cluster, names, target):
    """The group's record, after making `target` its owner (None: wherever it is)."""
    with sync_client(cluster, next(x for x in names if cluster.pid(x))) as c:
        if target:
            c.Group.set_preferred_owners("web", [target])
        g = c.Group.get_record("web")
        if target and g["owner"] != target:
            c.Operation.wait(c.Group.offline("web")["handle"], 60)
            c.Operation.wait(c.Group.online("web")["handle"], 60)
            g = c.Group.get_record("web")
    return g


def _one_size(n, runs, token, coefficient, kill_leader, partition, resource_failure=False):
    times = []
    create = {"use_netns": True, "settings": {"fence_agent": "watchdog"}} if partition else {}
    with temp_cluster(n, token, coefficient, **create) as cluster:
        names = names_of(cluster)
        bed = cluster.testbed()
        hosts = {x: cluster.node(x)["api"].rsplit(":", 1)[0] for x in names}
        port = HTTP_PORT if partition else free_ports(1, 0)[0]
        _web_group(cluster, names, runs, port, "0.0.0.0" if partition else "127.0.0.1",
                   restarts=0 if resource_failure else None)
        for _ in range(runs):
            target = cluster.status()["cluster"]["leader"] if kill_leader else None
            g = _place_on(cluster, names, target)
            owner, old_pid = g["owner"], g["resources"][0]["pid"]
            others = [x for x in names if x != owner]
            while not _answers(port, hosts[owner]):
                time.sleep(0.01)
            t0 = time.monotonic()
            if partition:
                netns.partition(bed, [names.index(x) for x in others], [names.index(owner)])
            elif resource_failure:
                os.kill(old_pid, signal.SIGKILL)  # the resource our daemon started, by its pid
            else:
                cluster.kill(owner, signal.SIGKILL)
            deadline = t0 + 60
            with sync_client(cluster, others[0]) as c:
                while time.monotonic() < deadline:
                    g = c.Group.get_record("web")
                    r = g["resources"][0]
                    moved = g["owner"] in others  # (not a restart in place: one loopback answers for all)
                    if r["pid"] not in (None, old_pid) and moved and any(_answers(port, hosts[x]) for x in others):
                        times.append(time.monotonic() - t0)
                        console.print(f"[dim]run {len(times)}: {owner} -> {c.Group.get_record('web')['owner']} "
                                      f"in {times[-1]:.3f} s[/]")
                        break
                    time.sleep(0.01)
                c.Group.set_preferred_owners("web", [])
            if partition:
                netns.heal(bed)
            elif not resource_failure:  # (a resource failure leaves every daemon up)
                cluster.start(owner)
            run_async(wait_all_live(cluster, n))
    return times


@subcommand("failover", "kill -9 of the owner -> the group's HTTP port answers from the new owner",
            arg("--runs", type=int, default=20, help="repetitions per size (default 20)"), TOKEN, COEF,
            arg("--sizes", default="3,5", help="cluster sizes (default 3,5)"),
            arg("--leader", action="store_true", help="the killed owner is also the Raft leader"),
            arg("--partition", action="store_true",
                help="root: cut the owner off in a network namespace (watchdog fence) instead of killing it"),
            arg("--resource-failure", action="store_true",
                help="the owner stays up; its resource fails past its restart policy (kill -9 of the "
                     "resource's process, restart threshold 0) and the group fails over"))
def bench_failover(args):
    if args.partition:
        netns.require()
    if args.partition and args.resource_failure:
        raise SystemExit("tools/bench failover: --partition and --resource-failure are two different faults; pick one")
    rows, goals = [], []
    what = ("partition of the " if args.partition else "kill -9 of the ") + ("leader and " if args.leader else "") + "owner"
    if args.resource_failure:
        what = "resource failure past its restart policy on the " + ("leader and " if args.leader else "") + "owner"
    for n in [int(x) for x in args.sizes.split(",")]:
        times = _one_size(n, args.runs, args.token, args.coefficient, args.leader, args.partition,
                          args.resource_failure)
        s = summary(times)
        target = effective_token(args.token, args.coefficient, n) + 0.35
        no_goal = args.partition or args.resource_failure
        rows.append({**s, "n": n, "runs": len(times), "goal": None if no_goal else target})
        if not no_goal:  # the watchdog waits out the fence delay on purpose; a resource failure: a new figure
            goals.append(goal(f"{n} nodes: {what} -> port answers (median)",
                              target, s["p50"], s["p50"] is not None and s["p50"] <= target))
    t = Table("N", "runs", "min", "median", "p95", "max", "goal",
              title=f"failover: {what}, token {args.token} s, coefficient {args.coefficient} s")
    for r in rows:
        t.add_row(str(r["n"]), f"{r['runs']}/{args.runs}", fmt(r["min"]), fmt(r["p50"]), fmt(r["p95"]),
                  fmt(r["max"]), f"<= {r['goal']:.2f} s" if r["goal"] else
                  ("monitor + hand-over + start" if args.resource_failure else "fence delay + start"))
    console.print(t)
    return {"params": vars_of(args), "sizes": rows, "goals": goals}
