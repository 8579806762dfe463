"""The coordinator: on the Raft leader only, carry out what decide() (decide.py) says.

Every step is a committed command, so a new leader takes over where the old one stopped: it
reads the fence records, the moves and the groups' owners from the database. The fence agents
are in fencing.py, the moves that wait for their hand-over in mover.py, the commands are written
by move_driver.py.
"""
import asyncio
import logging
import time

from . import decide
from .move_driver import MoveDriver
from .mover import Mover
from .errors import ClusterError
from .fencing import Fencer
from .node import wake_or_timeout

log = logging.getLogger("clusterd.coordinator")


class Coordinator:
    def __init__(self, node):
        self.node = node
        self.fencer = Fencer(node, started=time.monotonic())
        self.fencing = set()
        self.since = {}  # decide's watch keys -> when this leader first saw them (time.monotonic())
        self.mover = Mover(node)  # drains, failbacks, switchover moves
        self.moves = MoveDriver(node)  # decide's commands

    async def run(self):
        while True:
            await wake_or_timeout(self.node.coordinate, self.node.cfg.token_timeout / 16)
            node = self.node
            if not (node.replica.ready() and node.replica.is_leader() and node.membership.view()["is_quorate"]):
                continue
            try:
                await self.step()
            except ClusterError as e:
                log.info("coordinator step deferred: %s", e)

    async def step(self):
        """One decision (decide.py) from the committed state and this leader's view, carried out."""
        node, now = self.node, time.monotonic()
        view = {"live": sorted(node.membership.view()["live"]), "hour": time.localtime().tm_hour,  # windows: local hours
                "retry_after": node.cfg.token_timeout / 2}
        in_flight = {"busy": set(self.mover.busy), "fencing": set(self.fencing), "since": self.since}
        d = node.replica.read(lambda s: decide.decide(s, view, now, in_flight))
        self.since = {k: self.since.get(k, now) for k in d.watch}
        for what, why in d.errors:
            log.error("leader duty for %s skipped: %s", what, why)
        for f in d.fences:
            self.fencing.add(f["node"])
            asyncio.ensure_future(self._fence(f["node"], already_requested=f["requested"], live=f["live"]))
        for t in d.tasks:
            self.mover.carry_out(t)
        await self.moves.carry_out(d.commands)

    # -- fencing -----------------------------------------------------------------------------
    async def _fence(self, down, already_requested=False, live=False):
        """Fence `down`: a lost node, or (live) a source that did not hand over within its stop
        bound; the leader grants a fenced node no lease (lease.py), so a live one stops too."""
        agent = self.node.cfg.fence_agent
        try:
            if not already_requested:
                await self.node.write("fence.request", node=down, agent=agent, live=live)
            ok, detail = await self.fencer.fence(down, live=live)
            if ok and not live and self.fencer.heard_again(down):
                ok, detail = False, f"{down} was heard again: not fenced, its groups stay where they are"
            log.warning("fence of %s by %s: %s (%s)", down, agent, "done" if ok else "FAILED", detail)
            await self.node.write("fence.result", node=down, fenced=ok, detail=detail)
            self.node.coordinate.set()  # fail its groups over now, not at the next step
        except ClusterError as e:
            log.info("fence of %s not recorded: %s", down, e)
        finally:
            self.fencing.discard(down)
