"""The executor (every node): run what the committed state says this node owns, nothing else.

A resource may run here only while the committed state says this node owns its group, the
group's persistent state is online, the resource has not failed, and this node is quorate
and holds its lease (DESIGN.md invariant 3); without them the no-quorum policy decides (stop,
the default; freeze; ignore). The executor converges to
that: starts in dependency order, stops in reverse, monitors what runs, applies the restart
policy, and reports every resource state change as a command that the leader commits.
After a daemon restart it adopts what its agents left running (their records on disk) and
stops whatever it may no longer run: no orphan, no duplicate.

Moves (moves.py): on the source it answers a move's question with its agents' prepare_move,
then stops the group (it is not wanted there while the move stops it); on the destination it
starts the group with the move's property list. At most `start_slots` (node config) groups start at once on a
node; the others wait, except a CLUSAPI_GROUP_MOVE_HIGH_PRIORITY_START move's, which goes first.
"""
import asyncio
import logging
import time

import psutil

from . import agents, groups, moves
from .errors import ClusterError
from .node import wake_or_timeout

log = logging.getLogger("clusterd.executor")

TICK = 0.1
PREPARE_MOVE_TIMEOUT = 30.0  # seconds an agent has to answer whether its resource may move


def _plan(state, me):
    """Pure: for each group this node owns, its resources in dependency order and whether
    they may run. Copies what the executor needs so it can act without the lock."""
    plan = {}
    for g in state["groups"].values():
        if g["owner"] != me or not g["resources"]:
            continue
        move_properties = moves.move_properties_for(g, me)
        order = [dict(state["resources"][rid], properties=dict(state["resources"][rid]["properties"]),
                      move_properties=dict(move_properties or {}))
                 for rid in groups.topo_order(state, g)]
        plan[g["id"]] = {"wanted": groups.wanted_resources(state, g), "resources": order,
                         "high_priority": moves.high_priority_on(g, me), "question": moves.question_for(g, me),
                         "move_properties": dict(g["move"]["properties"]) if g.get("move") else {}}
    return plan


def _start_order(plan):
    """The order in which groups waiting to start get a start slot: high-priority moves
    (CLUSAPI_GROUP_MOVE_HIGH_PRIORITY_START) first, then the database's order."""
    return [gid for gid, g in plan.items() if g["high_priority"]] + \
        [gid for gid, g in plan.items() if not g["high_priority"]]


def _create_time(pid):
    try:
        return psutil.Process(pid).create_time() if pid else None
    except psutil.Error:
        return None


class Executor:
    def __init__(self, node):
        self.node = node
        self.me = node.cfg.name
        self.running = {}  # rid -> (agent, resource record it was started with)
        self.workers = {}  # gid -> task converging that group
        self.next_monitor = {}  # rid -> monotonic time of the next monitor
        self._plan, self._plan_at, self._order = {}, None, []
        self.starting = set()  # gids whose worker starts something (they hold a start slot)
        self.answered = set()  # (handle, ask number) of the move questions answered here
        self.reporting = set()  # workers waiting for a report to commit
        self._lost_since = None  # monotonic time this node lost quorum or its lease

    def ctx(self):
        return agents.Context(node=self.me, data_dir=self.node.cfg.data_dir)

    async def run(self):
        await self._adopt_leftovers()
        # after a restart: act only once the journal has replayed, and give heartbeats one
        # token to arrive before concluding that this node is not quorate (and stopping)
        started = time.monotonic()
        while not (self.node.replica.ready() and (self._may_run() or
                   time.monotonic() - started > self.node.membership.effective_token())):
            await asyncio.sleep(TICK)
        while True:
            await wake_or_timeout(self.node.owners_changed, TICK)
            try:
                self._converge()
            except Exception:
                log.exception("executor step failed")

    # -- converging --------------------------------------------------------------------------
    def _may_run(self):
        """Invariant 3: ready, quorate, and the current leader heard within the effective
        token (the lease; the leader holds it itself while it is quorate)."""
        node = self.node
        if not (node.replica.ready() and node.membership.view()["is_quorate"]):
            return False
        return time.monotonic() < node.lease_deadline()

    def _mode(self):
        """"run" while this node may run its groups (invariant 3). Without quorum or lease,
        what the no-quorum policy says: "stop" (the default), "freeze" (keep what runs, start
        and restart nothing), or "run" all the same ("ignore": for demos only)."""
        if self._may_run():
            self._lost_since = None
            return "run"
        policy = self.node.cfg.no_quorum_policy
        if not self.node.replica.ready():
            return "stop"
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            if policy == "ignore":
                log.critical("%s lost quorum or its lease; no_quorum_policy = ignore keeps its groups "
                             "running: another partition may run them too", self.me)
            elif policy == "freeze":
                log.warning("%s lost quorum or its lease; no_quorum_policy = freeze keeps what runs "
                            "and starts nothing", self.me)
        return {"stop": "stop", "freeze": "freeze", "ignore": "run"}[policy]

    def _converge(self):
        mode = self._mode()
        if mode == "stop":
            self._stop_waiting_for_reports()
        plan = self._current_plan()
        running = set(self.running)
        wanted = set()
        for gid, g in plan.items():
            if mode == "run":
                wanted |= g["wanted"]
            elif mode == "freeze":
                wanted |= g["wanted"] & running
        # groups with work to do: something wanted is not running, or something runs unwanted
        for gid in self._order:
            g = plan[gid]
            ids = {r["id"] for r in g["resources"]}
            starts = (ids & wanted) - running
            todo = starts or (ids & running) - wanted \
                or mode == "run" and any(r["id"] in wanted and r["state"] != "Online" and r["id"] in running
                                         for r in g["resources"])
            if todo and gid not in self.workers:
                if starts:  # a high-priority move's start does not wait for a slot
                    if len(self.starting) >= self.node.cfg.start_slots and not g["high_priority"]:
                        continue
                    self.starting.add(gid)
                self._spawn(gid, self._converge_group(gid, g, wanted))
            elif mode == "run" and g["question"] and g["question"] not in self.answered and gid not in self.workers:
                self._spawn(gid, self._answer_move(gid, g))
        # resources running here that no group of ours holds any more (moved, deleted)
        orphans = set(self.running) - {r["id"] for g in plan.values() for r in g["resources"]}
        for rid in orphans:
            if ("orphan", rid) not in self.workers:
                self._spawn(("orphan", rid), self._stop(rid, report=False))
        self._monitor_due(plan, wanted)

    def _stop_waiting_for_reports(self):
        """No quorum or no lease: a worker waiting for a report to commit may wait long (its
        write was submitted before the loss), and holds its group meanwhile; its group must
        stop now. Nothing is lost: what runs is in self.running, and is reported again later."""
        for key, task in list(self.workers.items()):
            if task in self.reporting:
                log.info("group %s: no quorum or lease, not waiting for a report any more", key)
                task.cancel()
                self.workers.pop(key, None)
                self.starting.discard(key)
                self.reporting.discard(task)

    def _current_plan(self):
        """The plan, rebuilt only when something new was applied to the database."""
        applied = self.node.replica.last_applied()
        if applied != self._plan_at:
            self._plan = self.node.replica.read(lambda s: _plan(s, self.me))
            self._order = _start_order(self._plan)
            self._plan_at = applied
        return self._plan

    def _spawn(self, key, coro):
        task = asyncio.ensure_future(coro)
        self.workers[key] = task
        task.add_done_callback(lambda t: self._done(key, t))

    def _done(self, key, task):
        if self.workers.get(key) is task:
            self.workers.pop(key)
            self.starting.discard(key)

    async def _converge_group(self, gid, g, wanted):
        # stop in reverse dependency order what may not run, then start in order what may
        for r in reversed(g["resources"]):
            if r["id"] in self.running and r["id"] not in wanted:
                await self._stop(r["id"])
        for r in g["resources"]:
            if r["id"] not in wanted:
                continue
            deps_up = all(d in self.running for d in r["dependencies"])
            if not deps_up:
                return  # a dependency did not come up; the restart policy deals with it
            if r["id"] not in self.running:
                if not await self._start(r):
                    return
            elif r["state"] != "Online":
                await self._report(r["id"], "Online", self.running[r["id"]][2])

    async def _start(self, r, restarted=False):
        ctx = self.ctx()
        ctx.move_properties = dict(r.get("move_properties") or {})  # the move that brought it here
        agent = agents.create({k: r[k] for k in ("id", "name", "type", "properties")}, ctx)
        if not await self._report(r["id"], "OnlinePending", None, restarted=restarted) and self._may_run():
            return False  # refused (e.g. this node no longer owns the group): start nothing. Without
            # quorum nothing commits: only no_quorum_policy = ignore gets here, and starts anyway
        result = await agent.start()
        if result.state == "online":
            self.running[r["id"]] = (agent, r, result)
            self.next_monitor[r["id"]] = time.monotonic() + r["monitor_interval"]
            await self._report(r["id"], "Online", result)
            return True
        log.warning("resource %s failed to start: %s", r["name"], result.detail)
        return await self._failed(r, result)

    async def _stop(self, rid, report=True):
        agent, r, last = self.running[rid]
        if report and self._may_run():  # with its pid: until the stop is confirmed, a fence of this node must kill it
            await self._report(rid, "OfflinePending", last)  # (without quorum or lease: stop first, report later)
        result = await agent.stop()
        if result.state == "offline":
            self.running.pop(rid, None)
            self.next_monitor.pop(rid, None)
            if report:
                await self._report(rid, "Offline", result)
        else:
            log.error("resource %s could not be stopped: %s", r["name"], result.detail)

    # -- monitoring and the restart policy ---------------------------------------------------
    def _monitor_due(self, plan, wanted):
        now = time.monotonic()
        records = {r["id"]: r for g in plan.values() for r in g["resources"]}
        for rid in list(self.running):
            # one activity per group at a time: a monitor that finds a failure restarts the
            # resource itself, and the group's converging worker must not start it as well
            gid = records[rid]["group"] if rid in records else None
            if rid in wanted and now >= self.next_monitor.get(rid, 0) and gid not in self.workers:
                self.next_monitor[rid] = now + records[rid]["monitor_interval"]
                self._spawn(gid, self._monitor(records[rid]))

    async def _monitor(self, r):
        agent, _, last = self.running[r["id"]]
        result = await agent.monitor()
        if result.state == "online":
            if result.locked != last.locked:
                self.running[r["id"]] = (agent, r, result)
                await self._report(r["id"], "Online", result)
            return
        log.warning("resource %s failed its monitor: %s", r["name"], result.detail)
        await agent.stop()  # whatever is left of it
        self.running.pop(r["id"], None)
        await self._failed(r, result)

    async def _failed(self, r, result):
        """Restart within the policy; past it, the resource (and so its group) is Failed."""
        policy = r["restart"]
        recent = [t for t in r["restarts"] if time.time() - t < policy["period"]]
        if policy["action"] != "none" and len(recent) < policy["threshold"] and result.severity != "fatal" \
                and self._mode() == "run":
            await asyncio.sleep(policy["delay"])
            r = dict(r, restarts=recent + [time.time()])
            return await self._start(r, restarted=True)
        await self._report(r["id"], "Failed", result)
        return False

    async def _answer_move(self, gid, g):
        """Ask the group's running resources whether they may move; commit the answer."""
        question = g["question"]
        answers = {}
        for r in g["resources"]:
            if r["id"] in self.running:
                try:  # an agent that cannot say in time says "not now"
                    answers[r["name"]] = await asyncio.wait_for(
                        self.running[r["id"]][0].prepare_move(g["move_properties"]), PREPARE_MOVE_TIMEOUT)
                except asyncio.TimeoutError:
                    answers[r["name"]] = agents.MOVE_NOT_NOW
        worst = next((a for a in (agents.MOVE_REJECT, agents.MOVE_NOT_NOW) if a in answers.values()), agents.MOVE_OK)
        try:
            await self.node.write("group.move_answer", group=gid, handle=question[0], ask=question[1], node=self.me,
                                  answer=worst, resources=[n for n, a in answers.items() if a == worst])
            self.answered.add(question)
        except ClusterError as e:
            log.info("answer to the move of %s not committed: %s", gid, e)

    async def _report(self, rid, state, result, restarted=False):
        """Commit a resource's state; True when committed."""
        task = asyncio.current_task()
        self.reporting.add(task)
        try:
            pid = getattr(result, "pid", None)
            await self.node.write("resource.report", resource=rid, node=self.me, state=state,
                                  pid=pid, pid_create_time=_create_time(pid),
                                  locked=bool(getattr(result, "locked", False)),
                                  detail=getattr(result, "detail", "") or "", restarted=restarted)
            return True
        except ClusterError as e:
            log.info("report of %s as %s not committed: %s", rid, state, e)
            return False
        finally:
            self.reporting.discard(task)

    async def shutdown(self):
        """The daemon is stopping: stop what runs here, dependents first; report nothing (the
        group stays this node's, and starts again when the daemon does)."""
        for task in list(self.workers.values()):
            task.cancel()
        plan = self.node.replica.read(lambda s: _plan(s, self.me))
        order = [r["id"] for g in plan.values() for r in reversed(g["resources"])]
        for rid in order + [r for r in list(self.running) if r not in order]:
            if rid in self.running:
                await self._stop(rid, report=False)

    # -- after a restart ---------------------------------------------------------------------
    async def _adopt_leftovers(self):
        for resource in agents.leftovers(self.node.cfg.data_dir):
            agent = agents.create(resource, self.ctx())
            result = await agent.adopt()
            if result is None:
                continue
            if result.state == "online":
                record = {**resource, "dependencies": [], "monitor_interval": 1.0,
                          "restart": dict(groups.DEFAULT_RESTART), "restarts": [], "state": "Online"}
                self.running[resource["id"]] = (agent, record, result)
                log.info("adopted %s (pid %s)", resource.get("name"), result.pid)
            else:
                await agent.stop()
