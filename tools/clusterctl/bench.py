"""Benchmarks of clusterd on a local cluster: `tools/bench NAME [options]`, `tools/bench all`.

Every benchmark makes its own cluster in a temporary dir (127.0.0.1 only) and destroys it at
the end, also on an error or Ctrl-C. Each prints a table and writes its figures as JSON
(default bench-results/NAME.json, --out to override).

Adding a benchmark (groups, failover, move, drain ...): write `def bench_x(args)`, register it
with @subcommand(name, help, *arg(...)), print its table, and return a JSON-able dict with at
least "goals": [goal(...), ...] (empty if it has none). `all` runs the names in ISSUE2.
"""
import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

import psutil
import uvloop
from rich.console import Console
from rich.table import Table

from clusterd.client import AsyncClient, Client
from clusterd.errors import ClusterError
from clusterd.quorum import effective_token, quorum

from .launcher import LocalCluster

console = Console(width=None if sys.stdout.isatty() else 150)  # logs: no wrapped tables
SUBCOMMANDS = {}  # name -> (function, help, argument specs)
ISSUE2 = ("membership", "up", "writes", "idle")  # what `all` runs, in this order


def subcommand(name, help, *arguments):
    """Register a benchmark; each argument is (flags tuple, argparse kwargs)."""
    def deco(fn):
        SUBCOMMANDS[name] = (fn, help, arguments)
        return fn
    return deco


def arg(*flags, **kwargs):
    return flags, kwargs


RUNS = arg("--runs", type=int, default=5, help="repetitions (default 5)")
TOKEN = arg("--token", type=float, default=1.0, help="token_timeout, s (default 1.0)")
COEF = arg("--coefficient", type=float, default=0.65, help="token_timeout_coefficient, s (default 0.65)")


# -- shared helpers -----------------------------------------------------------------------------
def percentile(xs, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(xs):
    return {"n": len(xs), "min": min(xs, default=None), "p50": percentile(xs, 50),
            "p95": percentile(xs, 95), "p99": percentile(xs, 99), "max": max(xs, default=None)}


def fmt(v, unit="s", digits=3):
    """A figure for a table: seconds, milliseconds (given in s), a rate; anything else as is."""
    if v is None:
        return "-"
    if not isinstance(v, (int, float)):
        return str(v)
    known = {"s": f"{v:.{digits}f} s", "ms": f"{v * 1000:.2f} ms", "/s": f"{v:,.0f}/s"}
    return known.get(unit, f"{v:.4g} {unit}")


def met(ok):
    return "[green]yes[/]" if ok else "[red]NO[/]"


def goal(what, target, measured, ok, unit="s"):
    return {"what": what, "goal": target, "measured": measured, "met": bool(ok), "unit": unit}


def write_json(path, name, result):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    doc = {"bench": name, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg_after": os.getloadavg()},
           **result}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, default=str)
    console.print(f"[dim]wrote {path}[/]")


def run_async(coro, limit=600.0):
    """Run a coroutine on uvloop, bounded in time whatever it awaits."""
    async def bounded():
        return await asyncio.wait_for(coro, limit)
    return uvloop.run(bounded())


@contextlib.contextmanager
def temp_cluster(n, token=1.0, coefficient=0.65, **create):
    """A fresh n-node LocalCluster in a temp dir, started and quorate; always destroyed.
    `create`: more LocalCluster.create arguments (use_netns, settings). When the benchmark
    fails, the daemons' logs are kept in a dir it names."""
    tmp = tempfile.mkdtemp(prefix="clusterd-bench-")
    cluster = LocalCluster(os.path.join(tmp, "cluster"))
    try:
        cluster.create(n, token, coefficient, **create)
        for name in names_of(cluster):
            cluster.start(name)
        run_async(wait_all_live(cluster, n))
        yield cluster
    except BaseException:
        kept = tempfile.mkdtemp(prefix="clusterd-bench-logs-")
        for name in names_of(cluster) if cluster.exists() else []:
            if os.path.exists(cluster.node(name)["log"]):
                shutil.copy(cluster.node(name)["log"], os.path.join(kept, f"{name}.log"))
        console.print(f"[yellow]the benchmark failed; the daemons' logs are in {kept}[/]")
        raise
    finally:
        cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


def cpu_seconds(cluster):
    """CPU seconds (user + system) used so far by each running daemon, by this process, and by
    every process on the machine (to see what else competed for the CPUs)."""
    t = psutil.cpu_times()
    used = {"machine": t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0),
            "bench client": time.process_time()}
    for name in names_of(cluster):
        pid = cluster.pid(name)
        if pid:
            t = psutil.Process(pid).cpu_times()
            used[name] = t.user + t.system
    return used


def cpu_percent(before, after, seconds):
    """Per key, % of one CPU over the interval; "others" is the machine minus us and our daemons."""
    pct = {k: round((after[k] - before[k]) / seconds * 100, 1) for k in before if k in after}
    pct["others"] = round(max(0.0, pct.pop("machine") - sum(pct.values())), 1)
    return pct


def names_of(cluster):
    return [n["name"] for n in cluster.meta()["nodes"]]


def async_client(cluster, name, timeout=2.0):
    creds = cluster.credentials()
    return AsyncClient(cluster.node(name)["api"], creds["user"], creds["password"], timeout=timeout)


def sync_client(cluster, name, timeout=10.0):
    creds = cluster.credentials()
    return Client(cluster.node(name)["api"], creds["user"], creds["password"], timeout=timeout)


async def logged_in(cluster, names, timeout=2.0):
    clients = {n: async_client(cluster, n, timeout) for n in names}
    results = await asyncio.gather(*(c.login() for c in clients.values()), return_exceptions=True)
    failed = next((r for r in results if isinstance(r, BaseException)), None)
    if failed is not None:
        await close_all(clients)
        raise failed
    return clients


async def close_all(clients):
    for c in clients.values():
        await c.close()


async def status_or_none(client):
    try:
        return await client.Node.status()
    except (OSError, ClusterError, asyncio.TimeoutError, ConnectionError):
        return None


async def poll_until(client, pred, deadline, interval):
    """Poll Node.status until pred(status); the monotonic time of the answer, or None."""
    while time.monotonic() < deadline:
        st = await status_or_none(client)
        if st is not None and pred(st):
            return time.monotonic()
        await asyncio.sleep(interval)
    return None


async def wait_all_live(cluster, n, timeout=60.0):
    """Until every node is ready, quorate, reports live_hosts == n, and the Cluster record exists."""
    deadline = time.monotonic() + timeout
    names = names_of(cluster)
    while time.monotonic() < deadline:
        dead = [x for x in names if not cluster.pid(x)]
        if dead:
            raise RuntimeError(f"{dead[0]} is not running:\n{cluster.log_tail(dead[0])}")
        clients = {}
        try:
            clients = await logged_in(cluster, names, timeout=1.0)
            ok = await asyncio.gather(*(poll_until(
                c, lambda s: s["ready"] and s["is_quorate"] and s["live_hosts"] == n, deadline, 0.05)
                for c in clients.values()))
            if all(ok) and await clients[names[0]].Cluster.get_all():
                return
        except (OSError, ClusterError, asyncio.TimeoutError, ConnectionError):
            await asyncio.sleep(0.1)  # a daemon not listening yet, or not bootstrapped
        finally:
            await close_all(clients)
    raise TimeoutError(f"not every node reported live_hosts {n} within {timeout:.0f} s")


# -- 1. membership ------------------------------------------------------------------------------
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


def _leader(cluster, names):
    for name in names:
        try:
            with sync_client(cluster, name, 2.0) as c:
                return c.Node.status()["leader"]
        except (OSError, ClusterError):
            continue
    return None


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
                    leader = _leader(cluster, names)
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


# -- 2. up --------------------------------------------------------------------------------------
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


# -- 3. writes ----------------------------------------------------------------------------------
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
        leader = _leader(cluster, names)
        follower = next(n for n in names if n != leader)
        with sync_client(cluster, leader) as c:
            ref = c.Cluster.get_all()[0]
        _sequential(cluster, leader, ref, 100)  # warm up: connections, first entries
        piped = [run_async(_pipelined(cluster, who, ref, args.total, args.concurrency, args.cap))
                 for who in (leader, follower)]
        seq = [_sequential(cluster, who, ref, args.sequential) for who in (leader, follower)]
        still_leader = _leader(cluster, names)
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


# -- 4. idle ------------------------------------------------------------------------------------
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


# -- the command line ---------------------------------------------------------------------------
def vars_of(args):
    return {k: v for k, v in vars(args).items() if k not in ("fn", "name", "out")}


def build_parser():
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="name", required=True)
    for name, (fn, help_, arguments) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        for flags, kwargs in arguments:
            p.add_argument(*flags, **kwargs)
        p.add_argument("--out", help=f"JSON output (default bench-results/{name}.json)")
        p.set_defaults(fn=fn)
    p = sub.add_parser("all", help=f"run {', '.join(ISSUE2)} with their defaults")
    p.add_argument("--runs", type=int, help="override --runs where a benchmark has it")
    p.add_argument("--out-dir", default="bench-results", help="where NAME.json go (default bench-results)")
    p.set_defaults(fn=None)
    return parser


def run_one(args, out=None):
    console.rule(f"[bold]{args.name}")
    load = os.getloadavg()
    busy = psutil.cpu_percent(interval=1.0)
    console.print(f"[dim]before: CPUs {busy:.0f}% busy over 1 s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
                  f"({os.cpu_count()} CPUs)[/]")
    if busy > 20:
        console.print("[yellow]other processes are using the CPUs: timing figures will be pessimistic "
                      "(the writes table shows what others used during each run as 'others')[/]")
    result = dict(args.fn(args), loadavg_before=load, cpu_busy_percent_before=busy)
    write_json(out or args.out or os.path.join("bench-results", f"{args.name}.json"), args.name, result)
    return result


def _terminate(signum, frame):
    raise KeyboardInterrupt  # so that every try/finally destroys its cluster


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.name != "all":
            return 0 if all(g["met"] for g in run_one(args)["goals"]) else 1
        goals = []
        for name in ISSUE2:
            has_runs = any("--runs" in flags for flags, _ in SUBCOMMANDS[name][2])
            extra = ["--runs", str(args.runs)] if args.runs and has_runs else []
            result = run_one(parser.parse_args([name, *extra]), os.path.join(args.out_dir, f"{name}.json"))
            goals += [dict(g, bench=name) for g in result["goals"]]
        table = Table("bench", "goal", "target", "measured", "met", title="issue 2: goals")
        for g in goals:
            table.add_row(g["bench"], g["what"], fmt(g["goal"], g["unit"]), fmt(g["measured"], g["unit"]),
                          met(g["met"]))
        console.rule("[bold]summary")
        console.print(table)
        write_json(os.path.join(args.out_dir, "all.json"), "all", {"goals": goals})
        return 0 if all(g["met"] for g in goals) else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; the benchmark clusters were destroyed[/]")
        return 130


from . import bench_drain, bench_durability, bench_failover, bench_fuzz, bench_groups, bench_move  # noqa: E402,F401  (they register; they build on the helpers above)

if __name__ == "__main__":  # run through the package's module, where every benchmark registered
    from clusterctl.bench import main as package_main
    sys.exit(package_main())
