"""The coordinator: on the Raft leader only, fence lost nodes, then restart their groups.

Every step is a committed command, so a new leader takes over where the old one stopped: it
reads the fence records and the groups' owners from the database. The fence agents are in
fencing.py.
"""
import asyncio
import logging
import time
import uuid

from . import domains, failover, placement  # noqa: F401  (failover registers its handlers)
from .move_driver import MoveDriver
from .mover import Mover
from .errors import ClusterError
from .fencing import Fencer
from .node import wake_or_timeout

log = logging.getLogger("clusterd.coordinator")

RETRY = 2.0  # seconds between attempts at a fence that failed


class Coordinator:
    def __init__(self, node):
        self.node = node
        self.fencer = Fencer(node, started=time.monotonic())
        self.fencing = set()
        self.mover = Mover(node)  # drains, failbacks, switchover moves
        self.moves = MoveDriver(node)  # queued moves, moves overtaken by a failover

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
        try:
            self.mover.step()
        except ClusterError:
            raise
        except Exception:  # a bug in one duty must not stop fencing and failover
            log.exception("mover step failed")
        await self.moves.step()
        lost, fences, failed = self.node.replica.read(
            lambda s: (failover.lost_groups(s), dict(s["fence"]), failover.failed_groups(s)))
        for gid, owner in failed:
            await self._restart_elsewhere(gid, owner, reason="resource failed")
        for down, group_ids in lost.items():
            fence = fences.get(down)
            if fence is None or (fence["status"] == "failed" and time.time() - fence.get("done_at", 0) > RETRY):
                if down not in self.fencing:
                    self.fencing.add(down)
                    asyncio.ensure_future(self._fence(down))
            elif fence["status"] == "requested" and down not in self.fencing:
                self.fencing.add(down)  # a fence an earlier leader started: run it again here
                asyncio.ensure_future(self._fence(down, already_requested=True))
            elif fence["status"] == "fenced":
                for gid in group_ids:
                    await self._restart_elsewhere(gid, down)

    async def _restart_elsewhere(self, gid, down, reason="node down"):
        live = self.node.membership.view()["live"]

        def choose(state):
            g = state["groups"][gid]
            return placement.place_group(state, live, g, exclude=[down])
        to = self.node.replica.read(choose)
        if to is None:
            log.warning("group %s lost with %s: no node can host it", gid, down)
            return
        log.info("failing over group %s from %s to %s (%s)", gid, down, to, reason)
        domain = self.node.replica.read(lambda s: domains.failover_domain(s, gid))
        if domain == "busy":
            return  # its exit programs are running (or another request ends first)
        if domain == "exit":  # the exit programs run first (action Failover); then the Mover fails it over
            await self.node.write("domain.request", kind="failover", group=gid, queue=domains.FAILOVER_QUEUE,
                                  handle=str(uuid.uuid4()), node=to, reason=reason, **{"from": down})
            return
        await self.node.write("group.failover", group=gid, to=to, reason=reason, **{"from": down})

    # -- fencing -----------------------------------------------------------------------------
    async def _fence(self, down, already_requested=False):
        agent = self.node.cfg.fence_agent
        try:
            if not already_requested:
                await self.node.write("fence.request", node=down, agent=agent)
            ok, detail = await self.fencer.fence(down)
            if ok and self.fencer.heard_again(down):
                ok, detail = False, f"{down} was heard again: not fenced, its groups stay where they are"
            log.warning("fence of %s by %s: %s (%s)", down, agent, "done" if ok else "FAILED", detail)
            await self.node.write("fence.result", node=down, fenced=ok, detail=detail)
            self.node.coordinate.set()  # fail its groups over now, not at the next step
        except ClusterError as e:
            log.info("fence of %s not recorded: %s", down, e)
        finally:
            self.fencing.discard(down)
