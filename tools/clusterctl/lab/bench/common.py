"""What every benchmark uses: declaring one (@subcommand), its cluster (temp_cluster), clients,
polling, CPU accounting, and the figures (summary, goal, fmt, write_json). The benchmarks are
the other modules here; __main__.py is the command line."""
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time

import psutil
import uvloop
from rich.console import Console

from clusterd.client import AsyncClient, Client
from clusterd.declare import Declarations
from clusterd.errors import ClusterError

from ..launcher import LocalCluster

console = Console(width=None if sys.stdout.isatty() else 150)  # logs: no wrapped tables
_DECLARED = Declarations("benchmark")


def subcommand(name, help, *arguments):
    """Declare a benchmark of this module; each argument is (flags tuple, argparse kwargs)."""
    def deco(fn):
        _DECLARED.declare(fn.__module__, name, (fn, help, arguments))
        return fn
    return deco


def benchmarks(*modules):
    """{name: (function, help, argument specs)} of the benchmarks the (imported) `modules` declare."""
    return _DECLARED.table(*modules)


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


def leader_of(cluster, names):
    """The Raft leader as the first node that answers reports it, or None."""
    for name in names:
        try:
            with sync_client(cluster, name, 2.0) as c:
                return c.Node.status()["leader"]
        except (OSError, ClusterError):
            continue
    return None


def vars_of(args):
    return {k: v for k, v in vars(args).items() if k not in ("fn", "name", "out")}
