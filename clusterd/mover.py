"""The leader's movers (imperative shell): they carry out decide()'s tasks (decide.py) that
wait for moves: drains, failback after a resume or by policy, and the move step of
recovery-domain switchovers. Every decision is committed; a new leader picks up where the
old one stopped, since drains InProgress and requests in phase "move" are in the database.

request_move(node, group, dest, flags) is the one place where they move a group, and it moves it
exactly as Group.move does (moves.py): the source stops before the destination starts.
"""
import asyncio
import logging
import uuid

from . import decide, moves, pause
from .errors import ClusterError

log = logging.getLogger("clusterd.mover")

MOVE_TIMEOUT = 120.0  # seconds a move may take before the mover stops waiting for it
DRAIN_ROUNDS = 3  # times a drain places a group whose destination stopped being Up
POLL = 0.05


class Mover:
    def __init__(self, node):
        self.node = node
        self.waiting, self.poller = {}, None  # operation handle -> futures waiting for its end
        self.busy = set()  # keys of the tasks running: ("drain", node), ("failback", node), ("request", handle)

    # -- the one move primitive ----------------------------------------------------------------
    async def request_move(self, node, group, dest, flags=0):
        """Move `group` from `node` to `dest` with Group.move's machinery: (True, "", False) once
        `dest` owns it, else (False, why, refused), refused when the group's own resources kept it
        where it is (a locked one refused the move at once, or one rejected it when asked). A move
        already under way (e.g. one an earlier leader started) is followed rather than started again."""
        def current(state):
            g = state["groups"].get(group)
            if g is None:
                return None, None
            m = g.get("move")
            return g["owner"], (m["handle"] if m and m["to"] == dest else None)
        owner, handle = self.node.read(current)
        if owner == dest and handle is None:
            return True, "", False
        if handle is None:
            try:
                handle = (await self.node.write("group.move", group=group, to=dest, flags=flags, properties={},
                                                handle=str(uuid.uuid4()), by_cluster=True))["handle"]
            except ClusterError as e:
                return False, str(e), e.code == "ERROR_CLUSTER_RESOURCE_LOCKED_STATUS"
        status, error = await self._until_done(handle)
        owner = self.node.read(lambda s: s["groups"][group]["owner"] if group in s["groups"] else None)
        if owner == dest:  # moved (even if the group did not reach its state there: policy takes over)
            return True, "", False
        return False, error or f"the move ended {status}", moves.rejected_by_resources(error)

    async def _until_done(self, handle):
        """(status, error) of the move's operation once it is no longer pending; one poller
        reads the database for every waiter."""
        fut = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(handle, []).append(fut)
        if self.poller is None or self.poller.done():
            self.poller = asyncio.ensure_future(self._poll())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), MOVE_TIMEOUT)
        except asyncio.TimeoutError:
            return "pending", f"the move did not end within {MOVE_TIMEOUT:.0f} s"

    async def _poll(self):
        while self.waiting:
            await asyncio.sleep(POLL)
            handles = list(self.waiting)
            try:
                found = self.node.read(lambda s: {h: s["operations"].get(h) for h in handles})
            except ClusterError:
                continue
            for h, op in found.items():
                if op is None or op["status"] != "pending":
                    done = ("forgotten", None) if op is None else (op["status"], op["error"])
                    for fut in self.waiting.pop(h, []):
                        if not fut.done():
                            fut.set_result(done)

    # -- carrying out decide()'s tasks ----------------------------------------------------------
    def carry_out(self, task):
        """Start the task decide() asked for (decide.py), unless one of its key runs."""
        kind = task["kind"]
        if kind == "drain":
            coro = self._drain(task["node"], task["moves"], task["kept"])
        elif kind == "failback":
            coro = self._failback(task["node"], task["moves"], task["groups"])
        elif kind == "move":
            log.info("move of group %s to %s (%s)", task["group"], task["to"], task["why"])
            coro = self.request_move(None, task["group"], task["to"], task["flags"])
        else:
            coro = self._switchover_move(task["handle"])
        self._spawn(task["key"], coro)

    def _spawn(self, key, coro):
        if key in self.busy:
            coro.close()
            return
        self.busy.add(key)
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: (self.busy.discard(key), t.cancelled() or t.exception() and
                                          log.error("%s failed: %r", key, t.exception())))

    # -- drain -----------------------------------------------------------------------------------
    async def _drain(self, name, planned, kept):
        """Move the drain's groups; one whose destination stopped being Up (down, or paused before
        the hand-over) is placed again (decide.drain_plan), up to DRAIN_ROUNDS times in all."""
        log.info("draining %s: %d group(s) to move, %d kept", name, len(planned), len(kept))
        moved, errors = [], []
        for _ in range(DRAIN_ROUNDS):
            results = await asyncio.gather(*(self.request_move(name, gid, dest, flags)
                                             for gid, dest, flags in planned))
            outcome = [(gid, dest, *result) for (gid, dest, _), result in zip(planned, results)]
            moved += [gid for gid, _, ok, _, _ in outcome if ok]
            # a group its resources kept here stays (with 0x1 the drain allows it: node.drain_done)
            kept = kept + [gid for gid, _, _, _, refused in outcome if refused]
            failed = [(gid, dest, why) for gid, dest, ok, why, refused in outcome if not ok and not refused]
            again = self.node.read(lambda s: {gid for gid, dest, _ in failed if pause.node_state(s, dest) != "Up"})
            errors += [why for gid, _, why in failed if gid not in again]
            if not again:
                break
            live = self.node.membership.view()["live"]
            planned, more = self.node.read(lambda s: decide.drain_plan(s, live, name, only=again))
            kept += more  # nowhere to go now: node.drain_done tells whether it may stay
        else:
            errors += [f"{gid}: its destination was not Up, {DRAIN_ROUNDS} times" for gid, *_ in planned]
        still = self.node.read(lambda s: pause.node_record(s, name)["drain"])
        if still != "InProgress":  # resumed meanwhile
            return
        status = "Failed" if errors else "Completed"
        detail = f"{len(errors)} move(s) failed: {errors[0]}" if errors else ""
        await self.node.write("node.drain_done", node=name, status=status, moved=moved, kept=kept, detail=detail)
        log.info("drain of %s: %s (%d moved, %d kept)", name, status, len(moved), len(kept))

    async def _failback(self, name, planned, groups):
        await asyncio.gather(*(self.request_move(owner, gid, name) for gid, owner in planned))
        await self.node.write("node.failback_done", node=name, groups=groups)

    # -- recovery domains ------------------------------------------------------------------------
    async def _switchover_move(self, handle):
        req = self.node.read(lambda s: dict(s["domain_requests"][handle]))
        owner = self.node.read(lambda s: s["groups"][req["group"]]["owner"] if req["group"] in s["groups"] else None)
        if owner is None:
            ok, why = False, "the group was deleted"
        elif req["kind"] == "failover":  # the lost owner is fenced: restart the group on the target
            try:  # (a handle: a resource failure's failover is a hand-over, a move)
                await self.node.write("group.failover", group=req["group"], to=req["target"], reason=req["reason"],
                                      handle=str(uuid.uuid4()), **{"from": req["from"]})
                ok, why = True, ""
            except ClusterError as e:
                ok, why = False, str(e)
        else:
            ok, why, _ = await self.request_move(owner, req["group"], req["target"])
        await self.node.write("domain.moved", handle=handle, ok=ok, detail=why)
