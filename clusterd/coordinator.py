"""The coordinator: on the Raft leader only, fence lost nodes, then restart their groups.

Every step is a committed command, so a new leader takes over where the old one stopped: it
reads the fence records and the groups' owners from the database. Fence agents:

- `watchdog`: wait the fence delay (effective token + the longest stop timeout + a margin)
  since this leader last heard the node. By then the node has stopped its resources itself,
  because it lost quorum or its lease (DESIGN.md invariant 3).
- `process` (same host): kill the node's daemon and its resource processes by pid and
  create time, and confirm that they are gone.
"""
import asyncio
import logging
import os
import signal
import time

import psutil

from . import failover, placement  # noqa: F401  (failover registers its handlers)
from .move_driver import MoveDriver
from .agents import records
from .errors import ClusterError

log = logging.getLogger("clusterd.coordinator")

MARGIN = 1.0  # seconds added to the watchdog's fence delay
RETRY = 2.0  # seconds between attempts at a fence that failed
DEFAULT_STOP_TIMEOUT = 10.0


def _runs(proc):
    """Still running: not gone, and not a zombie (dead, its parent has not reaped it yet)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Coordinator:
    def __init__(self, node):
        self.node = node
        self.started = time.monotonic()
        self.fencing = set()
        self.moves = MoveDriver(node)

    async def run(self):
        while True:
            await asyncio.sleep(self.node.cfg.token_timeout / 16)
            node = self.node
            if not (node.replica.ready() and node.replica.is_leader() and node.membership.view()["is_quorate"]):
                continue
            try:
                await self.step()
            except ClusterError as e:
                log.info("coordinator step deferred: %s", e)

    async def step(self):
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
        await self.node.write("group.failover", group=gid, to=to, reason=reason, **{"from": down})

    # -- fencing -----------------------------------------------------------------------------
    async def _fence(self, down, already_requested=False):
        agent = self.node.cfg.fence_agent
        try:
            if not already_requested:
                await self.node.write("fence.request", node=down, agent=agent)
            ok, detail = await (self._fence_process(down) if agent == "process" else self._fence_watchdog(down))
            if ok and self._heard_again(down):
                ok, detail = False, f"{down} was heard again: not fenced, its groups stay where they are"
            log.warning("fence of %s by %s: %s (%s)", down, agent, "done" if ok else "FAILED", detail)
            await self.node.write("fence.result", node=down, fenced=ok, detail=detail)
        except ClusterError as e:
            log.info("fence of %s not recorded: %s", down, e)
        finally:
            self.fencing.discard(down)

    def _heard_again(self, down):
        """The node is talking again (its suspicion was wrong, e.g. a stall under load)."""
        return down in self.node.membership.view()["live"]

    def _stop_timeout(self, down):
        def longest(state):
            timeouts = [float(state["resources"][r]["properties"].get("stop_timeout", DEFAULT_STOP_TIMEOUT))
                        for g in state["groups"].values() if g["owner"] == down for r in g["resources"]]
            return max(timeouts, default=DEFAULT_STOP_TIMEOUT)
        return self.node.replica.read(longest)

    async def _fence_watchdog(self, down):
        delay = self.node.membership.effective_token() + self._stop_timeout(down) + MARGIN
        heard = self.node.membership.last_heard.get(down, self.started)
        wait = heard + delay - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return True, f"fence delay {delay:.2f} s passed since {down} was last heard"

    async def _fence_process(self, down):
        """Kill the daemon and the resource processes of `down`, confirm they are gone; never
        a node this leader hears again."""
        if self._heard_again(down):
            return False, f"{down} was heard again before the fence"
        def targets(state):
            procs = [state["members"][down].get("process")]
            procs += [{"pid": r["pid"], "create_time": r.get("pid_create_time"), "resource": r["id"],
                       "witness": r["properties"].get("witness")}
                      for g in state["groups"].values() if g["owner"] == down
                      for r in (state["resources"][x] for x in g["resources"]) if r["pid"]]
            return [p for p in procs if p and p.get("create_time")]
        victims, witnessed = [], []
        for p in self.node.replica.read(targets):
            try:
                proc = psutil.Process(p["pid"])
                if abs(proc.create_time() - p["create_time"]) < 0.01:
                    victims.append(proc)
                    if p.get("witness"):
                        witnessed.append(p)
            except psutil.NoSuchProcess:
                continue
        for proc in victims:
            try:
                os.killpg(proc.pid, signal.SIGKILL) if os.getpgid(proc.pid) == proc.pid else proc.kill()
            except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
                pass
        deadline = time.monotonic() + 5.0
        alive = victims
        while alive and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            alive = [p for p in alive if _runs(p)]
        if alive:
            return False, f"still alive: {[p.pid for p in alive]}"
        for p in witnessed:  # the fenced node's agent cannot write its stop line: this fence does
            records.append_line(p["witness"], {"event": "stop", "resource": p["resource"], "node": down,
                                               "t": time.monotonic(), "pid": p["pid"], "by": "fence"})
        return True, f"killed {len(victims)} process(es) of {down}" if victims else f"no process of {down} left"
