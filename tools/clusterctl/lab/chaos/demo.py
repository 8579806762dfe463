"""`clusterctl demo quorum`: 5 nodes on the namespace testbed, cut 3|2 and healed, with a live
view of every node's own report (quorate, leader, live_hosts) and where each group runs. Each
step is narrated in one line. Without a TTY (or with plain=True) it prints the narration and a
plain table after each step. Its cluster lives in its own temporary dir, destroyed at the end."""
import asyncio
import os
import tempfile
import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .. import netns
from ..launcher import LauncherError, LocalCluster
from ..witness import double_online, read_witness
from .nemesis import Nemesis
from .testcluster import make_groups, remove
from .history import History

NODES, MAJORITY, MINORITY = 5, [0, 1, 2], [3, 4]
STEP_TIMEOUT = 45.0


class DemoError(Exception):
    pass


def table(st):
    groups = st.get("groups") or []
    t = Table("node", "up", "quorate", "leader", "live_hosts", "groups running here", title="cluster")
    for n in st["nodes"]:
        here = [g["name"] for g in groups if g["owner"] == n["name"] and g["state"] == "Online"
                and not g["name"].startswith("Cluster")]
        q = {True: "[green]yes[/]", False: "[red]no[/]"}.get(n["is_quorate"], "-")
        t.add_row(n["name"], "yes" if n["reachable"] else ("[red]down[/]" if not n["pid"] else "[yellow]no answer[/]"),
                  q, str(n["leader"] or "-"), str(n["live_hosts"] if n["live_hosts"] is not None else "-"),
                  ", ".join(sorted(here)) or "-")
    return t


class Demo:
    def __init__(self, console, plain):
        self.console, self.plain = console, plain
        self.cluster = LocalCluster(tempfile.mkdtemp(prefix="cd-chaos-demo-", dir="/tmp"))
        self.names = [f"node{i + 1}" for i in range(NODES)]
        self.lines, self.st, self.live = [], None, None
        self.t0 = time.monotonic()
        self.clients = {}
        self.witness = os.path.join(self.cluster.dir, "witness.jsonl")

    def say(self, line):
        line = f"[{time.monotonic() - self.t0:5.1f} s] {line}"
        self.lines.append(line)
        if self.plain:
            self.console.print(line, highlight=False, soft_wrap=True)
        self.refresh()

    def view(self):
        parts = [Text("\n".join(self.lines[-8:]))]
        if self.st:
            parts.append(table(self.st))
        return Group(*parts)

    def refresh(self):
        if self.live is not None:
            self.live.update(self.view())

    async def poll(self):
        self.st = await self.cluster.status_async(timeout=1.0, groups=True, clients=self.clients)
        self.refresh()
        return self.st

    async def until(self, what, predicate):
        """Poll until predicate(status) holds; the seconds it took (DemoError past the bound)."""
        started = time.monotonic()
        while time.monotonic() - started < STEP_TIMEOUT:
            st = await self.poll()
            if predicate(st):
                return time.monotonic() - started
            await asyncio.sleep(0.4)
        raise DemoError(f"{what}: not seen within {STEP_TIMEOUT:.0f} s")

    def stopped_on(self, nodes):
        """How many stop lines the given nodes wrote in the witness since the partition."""
        return sum(1 for r in read_witness(self.witness) if r.get("event") == "stop" and r.get("node") in nodes)

    def show_table(self):
        if self.plain and self.st:
            self.console.print(table(self.st))

    async def script(self, nemesis):
        n = lambda st, name: next(x for x in st["nodes"] if x["name"] == name)  # noqa: E731
        major = [self.names[i] for i in MAJORITY]
        minor = [self.names[i] for i in MINORITY]
        groups = lambda st: [g for g in st.get("groups") or [] if not g["name"].startswith("Cluster")]  # noqa: E731
        await self.until("all groups online", lambda st: groups(st) and all(g["state"] == "Online" for g in groups(st)))
        owners = {g["name"]: g["owner"] for g in groups(self.st)}
        self.say(f"5 nodes quorate, leader {self.st['cluster']['leader']}; groups run on "
                 + ", ".join(f"{g}@{o}" for g, o in sorted(owners.items())))
        self.show_table()
        on_minority = sorted(g for g, o in owners.items() if o in minor)
        await asyncio.to_thread(nemesis.start, {"fault": "partition-halves", "params": {"minority": MINORITY}})
        self.say(f"partition {','.join(major)} | {','.join(minor)}: each side hears only itself")
        took = await self.until("the minority to lose quorum",
                                lambda st: all(n(st, x)["is_quorate"] is False for x in minor)
                                and all(n(st, x)["is_quorate"] for x in major))
        self.say(f"after {took:.1f} s: {','.join(minor)} report not quorate (live_hosts 2 < quorum 3); "
                 f"{','.join(major)} stay quorate with live_hosts 3")
        self.show_table()
        took = await self.until("the minority to stop its groups", lambda st: self.stopped_on(minor) >= len(on_minority))
        self.say(f"after {took:.1f} s more: {','.join(minor)} stopped their groups themselves "
                 f"({', '.join(on_minority) or 'none'}): no quorum, no lease")
        took = await self.until("the minority's groups to run on the majority",
                                lambda st: all(g["owner"] in major and g["state"] == "Online" for g in groups(st)))
        self.say(f"after {took:.1f} s more (the watchdog fence delay): the majority restarted them and "
                 f"runs every group")
        self.show_table()
        await asyncio.to_thread(nemesis.heal_all)
        self.say("healed: every nftables rule flushed")
        took = await self.until("every node to rejoin",
                                lambda st: all(x["is_quorate"] and x["live_hosts"] == NODES for x in st["nodes"]))
        self.say(f"after {took:.1f} s: all 5 nodes rejoined, quorate, live_hosts 5; leader {self.st['cluster']['leader']}")
        self.show_table()
        twice = double_online(read_witness(self.witness))
        self.say("witness: no group ever ran on two nodes at once" if not twice else
                 f"witness: a group ran on two nodes at once: {twice[0]}")
        return not twice

    async def main(self, nemesis):
        try:
            return await self.script(nemesis)
        finally:
            for c in self.clients.values():
                await c.close()


def run_demo(plain=False, console=None):
    caps = netns.capabilities()
    for need, why in (("root", "root (it creates namespaces and nftables rules)"), ("netns", "`ip netns`"),
                      ("nft", "nftables (`nft`)")):
        if not caps[need]:
            raise DemoError(f"the quorum demo needs {why}; this machine lacks it")
    console = console or Console()
    demo = Demo(console, plain or not console.is_terminal)
    hist = None
    try:
        demo.say(f"starting 5 nodes, each in its own network namespace ({demo.cluster.dir})")
        # the watchdog fence (a real cluster's default), not the launcher's process fence: the
        # minority stays alive, without quorum, and stops its groups itself
        demo.cluster.create(NODES, xapi=False, use_netns=True, settings={"fence_agent": "watchdog"})
        for name in demo.names:
            demo.cluster.start(name)
        demo.cluster.wait_quorate(60)
        hist = History(f"{demo.cluster.dir}/demo-history.jsonl")
        nemesis = Nemesis(demo.cluster, hist)
        # a 10 s stop timeout: the watchdog fence waits effective token + 10 s + 1 s, which covers
        # how late a loaded minority notices and stops (with a 3 s one it sometimes did not)
        make_groups(demo.cluster, demo.witness, count=NODES, stop_timeout=10)
        if demo.plain:
            safe = asyncio.run(demo.main(nemesis))
        else:
            with Live(demo.view(), console=console, refresh_per_second=4) as live:
                demo.live = live
                safe = asyncio.run(demo.main(nemesis))
        demo.say(f"done in {time.monotonic() - demo.t0:.0f} s; removing the cluster")
        return safe
    except (LauncherError, netns.NetnsError) as e:
        raise DemoError(str(e)) from None
    finally:
        demo.live = None
        if hist:
            hist.close()
        remove(demo.cluster)
