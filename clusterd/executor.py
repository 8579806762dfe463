"""The executor (every node): carry out the node's plan (plan.py), nothing else.

Level-triggered: at every wake (an action ended, a failover was applied, the lease deadline,
a monitor, restart or retry due, and at least every TICK) it computes the plan again from the
committed state, the node's own view (ready, quorate, lease deadline) and its own books (what
may run here), and carries it out: at most one action per group at a time, groups side by
side. An action in flight that the new plan no longer names is cancelled at once (a start and
its health-check wait, a monitor, a move question, a report): so losing quorum or the lease
preempts everything, and every resource of the node is stopped, dependents first. A stop is
never cancelled; one that fails or times out escalates to a kill (agents.Agent.kill: SIGKILL
of the whole process group) and is retried, and the resource stays in the books, as possibly
running, until a stop proved it gone. The right to start is checked again at the instant
before each agent start, and nothing starts while a refused report of it is held.

Restart policy: a resource that fails (its start or its monitor) is stopped, then restarted
after the policy's delay (a DOWN entry in the books: no task sleeps) while its restarts last;
past them it is reported Failed. After a daemon restart the executor adopts what its agents
left running (their records on disk), keeps it for one effective token while heartbeats
arrive, then follows the plan like everything else: no orphan, no duplicate. SIGTERM of the
daemon (shutdown) stops everything the node runs, in-flight starts included, and reports
nothing (the groups stay this node's). At most `start_slots` (node config) groups start at
once; a CLUSAPI_GROUP_MOVE_HIGH_PRIORITY_START move's first.
"""
import asyncio
import logging
import time

import psutil

from . import agents, groups, moves, plan, policy, timing
from .errors import ClusterError
from .plan import DOWN, LIVE, STARTING, STOP_FAILED, UNKNOWN, UP, Entry

log = logging.getLogger("clusterd.executor")

TICK = 0.1
PREPARE_MOVE_TIMEOUT = 30.0  # seconds an agent has to answer whether its resource may move
RETRY = 1.0  # seconds before a failed stop is tried again (as a kill), or a refused report
SHUTDOWN_ROUNDS = 3  # a shutdown waits at most this many node stop bounds for its stops


def _create_time(pid):
    try:
        return psutil.Process(pid).create_time() if pid else None
    except psutil.Error:
        return None


def _raised(agent, call, e, severity=agents.SOFT):
    """An agent call that raised (an agent bug) as the failure it is: the resource may be in any
    state, so it stays in the books and is stopped (a stop that raised is retried as a kill)."""
    log.error("resource %s: %s raised %r", agent.name, call, e, exc_info=e)
    return agents.Result(agents.FAILED, detail=f"{call} raised {e.__class__.__name__}: {e}", severity=severity)


def _extract(state, actions, me):
    """What the actions need of the committed state, copied so they can run without the lock."""
    out = {}
    for key, a in actions.items():
        if a.kind == "start":
            r = state["resources"][a.target]
            g = state["groups"][r["group"]]
            out[key] = dict(r, properties=dict(r["properties"]), move_properties=dict(moves.move_properties_for(g, me) or {}))
        elif a.kind == "ask":
            g = state["groups"][key]
            out[key] = (dict(g["move"]["properties"]) if g.get("move") else {}, list(groups.topo_order(state, g)))
        elif a.kind == "monitor" and a.target in state["resources"]:
            out[key] = state["resources"][a.target]["monitor_interval"]
    return out


class Executor:
    def __init__(self, node, keeper=None):
        self.node = node
        self.keeper = keeper  # keeper.Link (the watchdog fence's keeper), or None
        self.me = node.cfg.name
        self.books = {}  # rid -> plan.Entry: everything that may run here
        self.agents = {}  # rid -> the agent instance that manages it
        self.results = {}  # rid -> its last Result (pid, locked)
        self.tasks = {}  # key -> (Action, task): the action the plan named for that key
        self.inflight = {}  # task -> (key, rid) of every task not ended yet (a cancelled one may still be ending)
        self.answered = set()  # (handle, ask number) of the move questions answered here
        self.held = {}  # rid -> monotonic instant until which a refused report holds it
        self.hold_until = 0.0
        self.shutting_down = False
        self._lost = False
        self._broken = set()  # the groups whose data the plan could not read, as last logged
        self.wake = asyncio.Event()

    def ctx(self):
        return agents.Context(node=self.me, data_dir=self.node.cfg.data_dir)

    async def run(self):
        await self._adopt_leftovers()
        # after a restart: keep what was adopted while heartbeats arrive, for one token; with a
        # keeper, only as long as the previous daemon's lease (the keeper stops it after that)
        self.hold_until = self.keeper.inherited if self.keeper else \
            time.monotonic() + self.node.membership.effective_token()
        while True:
            timeout = self.step()
            if self.keeper:
                await self.keeper.check()
            await self._sleep(timeout)

    async def _sleep(self, timeout):
        woken = asyncio.ensure_future(self.wake.wait())
        changed = asyncio.ensure_future(self.node.owners_changed.wait())
        try:
            await asyncio.wait([woken, changed], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            changed.cancel()
        self.wake.clear()
        self.node.owners_changed.clear()

    # -- the view and the plan ---------------------------------------------------------------
    def view(self):
        node = self.node
        if self.shutting_down:  # stop everything, report nothing
            return {"ready": node.replica.ready(), "quorate": False, "lease_deadline": 0.0, "hold_until": 0.0,
                    "policy": "stop", "start_slots": 0, "answered": self.answered, "held": self.held}
        return {"ready": node.replica.ready(), "quorate": node.membership.view()["is_quorate"],
                "lease_deadline": node.lease_deadline(), "hold_until": self.hold_until,
                "policy": node.cfg.no_quorum_policy, "start_slots": node.cfg.start_slots,
                "answered": self.answered, "held": self.held}

    def step(self):
        """Plan once and carry it out; return how long to sleep before the next step."""
        now = time.monotonic()
        view = self.view()
        if self.keeper:  # (also while shutting down: this daemon stops what runs itself)
            self.keeper.renew(view["lease_deadline"])
        self._log_mode(view, now)
        try:
            actions, extras = self.node.replica.read(lambda s: self._plan(s, view, now))
        except Exception:  # the committed state cannot be read at all: plan without it
            log.exception("no plan from the committed state: keeping what runs while the right holds")
            actions, extras = plan.plan(None, self.me, view, now, self.books), {}
        try:
            self._carry_out(actions, extras)
        except Exception:
            log.exception("executor step failed")
        wake = plan.next_wake(view, now, self.books)
        return TICK if wake is None else max(0.0, min(TICK, wake - time.monotonic()))

    def _plan(self, state, view, now):
        errors = []
        actions = plan.plan(state, self.me, view, now, self.books, errors)
        broken = {gid for gid, _ in errors}
        if broken != self._broken:
            for gid, e in errors:
                log.error("group %s: its data cannot be planned (%r): its resources are stopped", gid, e)
            self._broken = broken
        extras = {}
        for key, action in list(actions.items()):
            try:
                extras.update(_extract(state, {key: action}, self.me))
            except Exception:
                log.exception("%s: %s of %s dropped (its data cannot be read)", key, action.kind, action.target)
                del actions[key]
        return actions, extras

    def _log_mode(self, view, now):
        lost = not plan.right_to_start(view, now) and now >= view["hold_until"] and not self.shutting_down
        if lost and not self._lost:
            log.warning("%s lost quorum or its lease; no_quorum_policy = %s%s", self.me, view["policy"], {
                "stop": ": stopping everything it runs", "freeze": ": keeps what runs, starts nothing",
                "ignore": ": keeps running its groups; another partition may run them too"}[view["policy"]])
        self._lost = lost

    def _carry_out(self, actions, extras):
        for key, (action, task) in list(self.tasks.items()):
            if actions.get(key) != action and action.kind not in ("stop", "kill") and not task.done():
                log.info("%s: cancelled %s of %s (not in the plan any more)", key, action.kind, action.target)
                task.cancel()
        for key, action in actions.items():
            current = self.tasks.get(key)
            if current is not None and not current[1].done() and (current[0] == action or current[0].kind in ("stop", "kill")):
                continue
            self._launch(key, action, extras.get(key))

    def _launch(self, key, action, extra):
        """Run the action once whatever is still ending on its group or its resource has ended."""
        rid = action.target[0] if action.kind == "report" else None if action.kind == "ask" else action.target
        before = [t for t, (k, r) in self.inflight.items() if k == key or (rid is not None and r == rid)]
        run = getattr(self, "_do_" + action.kind)

        async def body():
            if before:
                await asyncio.wait(before)
            await run(key, action.target, extra)
        task = asyncio.ensure_future(body())
        self.tasks[key] = (action, task)
        self.inflight[task] = (key, rid)
        task.add_done_callback(lambda t: self._done(key, t))

    def _done(self, key, task):
        self.inflight.pop(task, None)
        if self.tasks.get(key, (None, None))[1] is task:
            self.tasks.pop(key)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: action failed", key, exc_info=task.exception())
        self.wake.set()

    # -- the actions -------------------------------------------------------------------------
    def _agent(self, r):
        ctx = self.ctx()
        ctx.move_properties = dict(r.get("move_properties") or {})  # the move that brought it here
        return agents.create({k: r[k] for k in ("id", "name", "type", "properties")}, ctx)

    def may_start_now(self, gid):
        view = self.view()
        return self.node.replica.read(lambda s: plan.may_start(s, self.me, view, time.monotonic(), gid))

    async def _do_start(self, key, rid, r):
        previous = self.books.get(rid)
        restarted = previous is not None and previous.phase == DOWN and previous.restarted
        if previous is None or previous.phase == DOWN:
            if plan.right_to_start(self.view(), time.monotonic()):
                if not await self._report(rid, "OnlinePending", None, restarted=restarted):
                    return  # refused: start nothing (held for RETRY)
            if not self.may_start_now(key):  # the instant before the start
                return
            agent = self.agents[rid] = self._agent(r)
            self.books[rid] = Entry(group=key, phase=STARTING, busy="start")
        else:  # a start in flight whose task was lost: its agent goes on
            agent = self.agents[rid]
        try:
            result = await agent.start()
        except asyncio.CancelledError:
            self.books[rid] = Entry(group=key, phase=UNKNOWN)  # whatever it left is stopped next
            raise
        except Exception as e:
            result = _raised(agent, "start", e)
        self.results[rid] = result
        if result.state == agents.ONLINE:
            self.books[rid] = Entry(group=key, phase=UP, next_monitor=time.monotonic() + r["monitor_interval"])
            await self._report(rid, "Online", result)
            return
        log.warning("resource %s failed to start: %s", r["name"], result.detail)
        self._failed(key, rid, result)

    def _failed(self, key, rid, result):
        """It failed (start or monitor): stop whatever is left of it; the restart policy decides
        then (see _gone)."""
        self.books[rid] = Entry(group=key, phase=UNKNOWN)
        self.results[rid] = result

    async def _do_stop(self, key, rid, _extra, kill=False):
        e = self.books[rid]
        e.busy = "kill" if kill else "stop"
        agent = self.agents[rid]
        last = self.results.get(rid)
        try:
            if not isinstance(key, tuple) and plan.right_to_start(self.view(), time.monotonic()):
                # with its pid: until the stop is confirmed, a fence of this node must kill it.
                # Bounded by the lease: without it, stop first and report later
                try:
                    await asyncio.wait_for(self._report(rid, "OfflinePending", last),
                                           max(0.0, self.node.lease_deadline() - time.monotonic()))
                except asyncio.TimeoutError:
                    pass
            try:
                result = await (agent.kill() if kill else agent.stop())
            except Exception as exc:  # it may still run: a failed stop (retried as a kill)
                result = _raised(agent, "kill" if kill else "stop", exc, agents.HARD)
        finally:
            e.busy = None
        if result.state == agents.OFFLINE:
            self._gone(key, rid)
            return
        log.error("resource %s could not be %s: %s; trying again as a kill in %g s", agent.name,
                  "killed" if kill else "stopped", result.detail, RETRY)
        self.books[rid] = Entry(group=e.group, phase=STOP_FAILED, retry_at=time.monotonic() + RETRY)

    async def _do_kill(self, key, rid, extra):
        await self._do_stop(key, rid, extra, kill=True)

    def _gone(self, key, rid):
        """A stop proved it gone: out of the books, unless it failed and its policy restarts it."""
        result = self.results.pop(rid, None)
        self.agents.pop(rid, None)
        self.books.pop(rid, None)
        if result is None or result.state != agents.FAILED or isinstance(key, tuple) or self.shutting_down \
                or not self.node.replica.ready():
            return
        r = self.node.replica.read(lambda s: dict(s["resources"][rid]) if rid in s["resources"] else None)
        if r is None:
            return
        recent = policy.recent_restarts(r, time.time())  # (committed wall times)
        rule = r["restart"]
        again = rule["action"] != "none" and len(recent) < rule["threshold"] and result.severity != agents.FATAL
        self.books[rid] = Entry(group=key, phase=DOWN, restarted=again,
                                restart_at=time.monotonic() + rule["delay"] if again else None)
        self.results[rid] = result

    async def _do_monitor(self, key, rid, interval):
        e = self.books[rid]
        e.busy = "monitor"
        agent, last = self.agents[rid], self.results.get(rid)
        try:
            result = await agent.monitor()
        except Exception as exc:
            result = _raised(agent, "monitor", exc)
        finally:
            e.busy = None
            e.next_monitor = time.monotonic() + (interval or plan.ADOPTED_MONITOR_INTERVAL)
        if result.state == agents.ONLINE:
            if last is None or result.locked != last.locked:
                self.results[rid] = result
                if not isinstance(key, tuple) and plan.right_to_start(self.view(), time.monotonic()):
                    await self._report(rid, "Online", result)
            return
        log.warning("resource %s failed its monitor: %s", agent.name, result.detail)
        self._failed(key, rid, result if result.state == agents.FAILED else
                     agents.Result(agents.FAILED, detail=result.detail, severity=agents.SOFT))

    async def _do_report(self, key, target, _extra):
        rid, state = target
        if await self._report(rid, state, self.results.get(rid)) and state in ("Failed", "Offline"):
            if rid in self.books and self.books[rid].phase == DOWN:
                self.books.pop(rid)
                self.results.pop(rid, None)

    async def _do_ask(self, gid, question, extra):
        """Ask the group's running resources whether they may move; commit the answer."""
        properties, order = extra
        answers = {}
        for rid in order:
            if rid in self.books and self.books[rid].phase == UP:
                agent = self.agents[rid]
                try:  # an agent that cannot say in time, or at all, says "not now"
                    answers[agent.name] = await asyncio.wait_for(agent.prepare_move(properties), PREPARE_MOVE_TIMEOUT)
                except asyncio.TimeoutError:
                    answers[agent.name] = agents.MOVE_NOT_NOW
                except Exception as exc:
                    _raised(agent, "prepare_move", exc)
                    answers[agent.name] = agents.MOVE_NOT_NOW
        worst = next((a for a in (agents.MOVE_REJECT, agents.MOVE_NOT_NOW) if a in answers.values()), agents.MOVE_OK)
        try:
            await self.node.write("group.move_answer", group=gid, handle=question[0], ask=question[1], node=self.me,
                                  answer=worst, resources=[n for n, a in answers.items() if a == worst])
            self.answered.add(question)
        except ClusterError as e:
            log.info("answer to the move of %s not committed: %s", gid, e)

    async def _report(self, rid, state, result, restarted=False):
        """Commit a resource's state; True when committed. A refusal holds the resource (no
        start, no report) for RETRY."""
        pid = getattr(result, "pid", None)
        try:
            await self.node.write("resource.report", resource=rid, node=self.me, state=state,
                                  pid=pid, pid_create_time=_create_time(pid),
                                  locked=bool(getattr(result, "locked", False)),
                                  detail=getattr(result, "detail", "") or "", restarted=restarted)
            self.held.pop(rid, None)
            return True
        except ClusterError as e:
            log.info("report of %s as %s not committed: %s", rid, state, e)
            self.held[rid] = time.monotonic() + RETRY
            return False

    # -- stopping the daemon -----------------------------------------------------------------
    async def shutdown(self):
        """The daemon is stopping: cancel what is in flight (starts included) and stop everything
        the node runs, groups side by side, dependents first, escalating to kills; report
        nothing (the groups stay this node's, and start again when the daemon does)."""
        self.shutting_down = True
        bound = self.node.replica.read(lambda s: timing.node_stop_bound(s, self.me)) if self.node.replica.ready() else 0.0
        deadline = time.monotonic() + SHUTDOWN_ROUNDS * max(bound, timing.DEFAULT_STOP_TIMEOUT + timing.KILL_WAIT)
        while time.monotonic() < deadline:
            timeout = self.step()
            if not any(e.phase in LIVE for e in self.books.values()) and not self.inflight:
                return
            await self._sleep(timeout)
        log.error("%s: shutdown gave up on %s", self.me, sorted(r for r, e in self.books.items() if e.phase in LIVE))

    # -- after a restart ---------------------------------------------------------------------
    async def _adopt_leftovers(self):
        for resource in agents.leftovers(self.node.cfg.data_dir):
            agent = agents.create(resource, self.ctx())
            try:
                result = await agent.adopt()
            except Exception as e:  # it may run: stopped next (UNKNOWN)
                result = _raised(agent, "adopt", e, agents.HARD)
            if result is None:
                continue
            rid = resource["id"]
            self.agents[rid], self.results[rid] = agent, result
            if result.state == agents.ONLINE:
                self.books[rid] = Entry(group=resource.get("group"), phase=UP,
                                        next_monitor=time.monotonic() + plan.ADOPTED_MONITOR_INTERVAL)
                log.info("adopted %s (pid %s)", resource.get("name"), result.pid)
            else:
                self.books[rid] = Entry(group=resource.get("group"), phase=UNKNOWN)  # stopped next
