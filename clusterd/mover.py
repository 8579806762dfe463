"""The leader's movers (imperative shell): drains, failback after a resume, and the move step
of recovery-domain switchovers. Every decision is committed; a new leader picks up where the
old one stopped, since drains InProgress and requests in phase "move" are in the database.

request_move(node, group, dest, flags) is the ONE place that moves a group. Today it drives the
interim move of moves.py (commit move_begin; the owner's executor stops the group; commit
move_finish once stopped; the destination's executor starts it). When Group.move lands, replace
its body with a call to Group.move's machinery; drain, failback and switchover do not change.
"""
import asyncio
import logging
import time

from . import moves, pause, placement
from .errors import ClusterError

log = logging.getLogger("clusterd.mover")

MOVE_TIMEOUT = 120.0  # seconds a source has to stop a moving group
BATCH = 500  # moves per committed command
POLL = 0.05


class Batcher:
    """Coalesce calls made within one tick into one committed command (a drain of 1,000
    groups makes a few commands, not 2,000)."""

    def __init__(self, node, op, field):
        self.node, self.op, self.field = node, op, field
        self.pending, self.flushing = [], False

    async def submit(self, item):
        fut = asyncio.get_running_loop().create_future()
        self.pending.append((item, fut))
        if not self.flushing:
            self.flushing = True
            asyncio.ensure_future(self._flush())
        return await fut

    async def _flush(self):
        try:
            await asyncio.sleep(0.01)
            while self.pending:
                batch, self.pending = self.pending[:BATCH], self.pending[BATCH:]
                try:
                    results = await self.node.write(self.op, **{self.field: [i for i, _ in batch]})
                except ClusterError as e:
                    results = [e] * len(batch)
                for (_, fut), r in zip(batch, results):
                    if not fut.done():
                        fut.set_result(r)
        finally:
            self.flushing = False


class Mover:
    def __init__(self, node):
        self.node = node
        self.begin = Batcher(node, "group.move_begin", "moves")
        self.finish = Batcher(node, "group.move_finish", "groups")
        self.waiting, self.poller = {}, None  # group id -> futures waiting for its source to stop
        self.busy = set()  # keys of the tasks running: ("drain", node), ("failback", node), ("request", handle)

    # -- the one move primitive ----------------------------------------------------------------
    async def request_move(self, node, group, dest, flags=0):
        """Move `group` from `node` to `dest`: (True, "") once `dest` owns it, else (False, why).
        The source stops before the destination starts (moves.py enforces it in the database)."""
        r = await self.begin.submit({"group": group, "to": dest})
        if isinstance(r, ClusterError):
            return False, str(r)
        if r == "moved":
            return True, ""
        if r != "moving":
            return False, r
        deadline = time.monotonic() + MOVE_TIMEOUT
        while time.monotonic() < deadline:
            stopped = await self._until_stopped(group, deadline - time.monotonic())
            if stopped is None:
                return False, "the group was deleted or its move was cancelled"
            if not stopped:
                break
            r = await self.finish.submit(group)
            if r == "moved":
                return True, ""
            if r != "stopping":
                return False, str(r)
        try:
            await self.node.write("group.move_abort", group=group)
        except ClusterError:
            pass
        return False, f"{node} did not stop the group within {MOVE_TIMEOUT:.0f} s"

    async def _until_stopped(self, gid, timeout):
        """True once the moving group's resources are all stopped, None if it is no longer
        moving, False past the timeout. One poller reads the database for every waiter."""
        fut = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(gid, []).append(fut)
        if self.poller is None or self.poller.done():
            self.poller = asyncio.ensure_future(self._poll())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(timeout, 0.0))
        except asyncio.TimeoutError:
            return False

    async def _poll(self):
        while self.waiting:
            await asyncio.sleep(POLL)
            gids = list(self.waiting)
            try:
                found = self.node.read(lambda s: {gid: self._stopped(s, gid) for gid in gids})
            except ClusterError:
                continue
            for gid, stopped in found.items():
                if stopped is not False:  # True (stopped) or None (no longer moving)
                    for fut in self.waiting.pop(gid, []):
                        if not fut.done():
                            fut.set_result(stopped)

    @staticmethod
    def _stopped(state, gid):
        g = state["groups"].get(gid)
        if g is None or not g.get("moving"):
            return None
        return moves._stopped(state, g)

    # -- the coordinator's step ----------------------------------------------------------------
    def step(self):
        """Start a task for each drain, failback and switchover move the database asks for."""
        work = self.node.read(lambda s: (
            [n for n, r in s.get("nodes", {}).items() if r["drain"] == "InProgress"],
            [n for n, r in s.get("nodes", {}).items() if r["failback"] and not r["paused"]],
            [(h, r["phase"], r["participants"], list(r["results"])) for h, r in s.get("domain_requests", {}).items()
             if r["status"] == "pending"]))
        drains, failbacks, requests = work
        for n in drains:
            self._spawn(("drain", n), self._drain(n))
        for n in failbacks:
            self._spawn(("failback", n), self._failback(n))
        live = set(self.node.membership.view()["live"])
        for handle, phase, participants, reported in requests:
            if phase == "move":
                self._spawn(("request", handle), self._switchover_move(handle))
            elif phase in ("exit", "undo"):
                gone = [n for n in participants if n not in reported and n not in live]
                if gone:
                    self._spawn(("gone", handle), self._not_active(handle, phase, gone))

    def _spawn(self, key, coro):
        if key in self.busy:
            coro.close()
            return
        self.busy.add(key)
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: (self.busy.discard(key), t.cancelled() or t.exception() and
                                          log.error("%s failed: %r", key, t.exception())))

    # -- drain -----------------------------------------------------------------------------------
    async def _drain(self, name):
        live = self.node.membership.view()["live"]

        def plan(state):
            flags = pause.node_record(state, name)["flags"]
            load = placement.node_load(state)
            out, kept = [], []
            for gid in pause.owned_groups(state, name):
                g = state["groups"][gid]
                if g.get("moving"):  # an earlier leader started this move: finish it
                    out.append((gid, g["moving"]["to"]))
                    continue
                dest = placement.place_group(state, live, g, exclude=[name], load=load)
                if dest is None and not flags & pause.REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR:
                    dest = placement.place_group(state, live, g, exclude=[name], load=load, policy=False)
                if dest is None:
                    kept.append(gid)
                    continue
                load[0][dest] += 1
                out.append((gid, dest))
            return flags, out, kept
        flags, planned, kept = self.node.read(plan)
        log.info("draining %s: %d group(s) to move, %d kept", name, len(planned), len(kept))
        results = await asyncio.gather(*(self.request_move(name, gid, dest, flags) for gid, dest in planned))
        moved = [gid for (gid, _), (ok, _) in zip(planned, results) if ok]
        errors = [why for ok, why in results if not ok]
        still = self.node.read(lambda s: pause.node_record(s, name)["drain"])
        if still != "InProgress":  # resumed meanwhile
            return
        status = "Failed" if errors else "Completed"
        detail = f"{len(errors)} move(s) failed: {errors[0]}" if errors else ""
        await self.node.write("node.drain_done", node=name, status=status, moved=moved, kept=kept, detail=detail)
        log.info("drain of %s: %s (%d moved, %d kept)", name, status, len(moved), len(kept))

    async def _failback(self, name):
        groups = self.node.read(lambda s: [(gid, s["groups"][gid]["owner"]) for gid in
                                           pause.node_record(s, name)["failback"] if gid in s["groups"]])
        await asyncio.gather(*(self.request_move(owner, gid, name) for gid, owner in groups if owner != name))
        await self.node.write("node.failback_done", node=name, groups=[gid for gid, _ in groups] or
                              self.node.read(lambda s: list(pause.node_record(s, name)["failback"])))

    # -- recovery domains ------------------------------------------------------------------------
    async def _switchover_move(self, handle):
        req = self.node.read(lambda s: dict(s["domain_requests"][handle]))
        owner = self.node.read(lambda s: s["groups"][req["group"]]["owner"] if req["group"] in s["groups"] else None)
        if owner is None:
            ok, why = False, "the group was deleted"
        elif req["kind"] == "failover":  # the lost owner is fenced: restart the group on the target
            try:
                await self.node.write("group.failover", group=req["group"], to=req["target"], reason=req["reason"],
                                      **{"from": req["from"]})
                ok, why = True, ""
            except ClusterError as e:
                ok, why = False, str(e)
        else:
            ok, why = await self.request_move(owner, req["group"], req["target"])
        await self.node.write("domain.moved", handle=handle, ok=ok, detail=why)

    async def _not_active(self, handle, phase, nodes):
        for n in nodes:
            try:
                await self.node.write("domain.exit_result", rid=f"{handle}-{phase}-{n}", handle=handle, phase=phase,
                                      node=n, ok=False, detail=f"{n} is no longer active")
            except ClusterError as e:
                log.info("exit result of %s for %s not committed: %s", n, handle, e)
