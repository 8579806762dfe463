"""The node's plan, as a pure function: what this node must do next for each of its groups.

    plan(state, me, view, now, running) -> {key: Action}

state    the committed database (while the replica is not ready, what it holds so far: only its
         dependencies are used then, to stop dependents first; None when there is none)
me       this node's name
view     this node's own view: ready, quorate, lease_deadline (monotonic), hold_until (what
         runs may be kept, not started, until then: a restarted daemon's first token),
         policy (no_quorum_policy), start_slots, answered (move questions answered here),
         held ({rid: until}: a refused report holds its resource's starts and reports)
now      time.monotonic(), passed in: no clock is read here
running  the node's own books, {rid: Entry}: everything that may be running here, and the
         resources that failed here and wait for their restart

Level-triggered: the executor computes the plan again at every wake and carries out at most
one action per key (a group, or ("orphan", rid) for what no group of ours holds); an action in
flight that the new plan no longer names is cancelled (a start, a monitor, a move question, a
report), except a stop, which always runs to its end. Keys run side by side.

The right to start (DESIGN.md invariant 3): the group's owner in the committed state is this
node, its persistent state online, and this node ready, quorate and holding its lease at
`now`; the executor asks `may_start` again at the instant before each agent start (the plan
may be older by an await). Without it, the no-quorum policy: "stop" stops every resource of
the node (dependents first), "freeze" keeps what runs and starts nothing, "ignore" goes on as
if it had it.
No I/O, no clock, no agents: table and property tests drive it (tests/test_plan_core.py).
"""
import dataclasses
from typing import NamedTuple

from . import groups, moves

STARTING, UP, UNKNOWN, STOPPING, STOP_FAILED, DOWN = "starting", "up", "unknown", "stopping", "stop_failed", "down"
LIVE = (STARTING, UP, UNKNOWN, STOPPING, STOP_FAILED)  # phases in which a process may exist
ADOPTED_MONITOR_INTERVAL = 1.0  # monitors of what a restarted daemon adopted, before it has the state


@dataclasses.dataclass
class Entry:
    """One resource in the node's books. It stays in them, as possibly running, until a stop
    proved it gone; a DOWN entry is one that failed here and is gone (restart_at: when it may
    start again; None: its restarts are exhausted and it is to be reported Failed)."""
    group: str | None
    phase: str
    next_monitor: float = 0.0
    retry_at: float = 0.0  # STOP_FAILED: when the stop is tried again, as a kill
    restart_at: float | None = None  # DOWN only
    restarted: bool = False  # the next start is a restart (counted by the restart policy)
    busy: str | None = None  # the action in flight on it: "start", "stop", "kill", "monitor"


class Action(NamedTuple):
    kind: str  # start | stop | kill | monitor | ask | report
    key: object  # the group id, or ("orphan", rid)
    target: object  # rid; for ask the question (handle, ask); for report (rid, state)


def right_to_start(view, now):
    """Ready, quorate, and the lease held at now."""
    return bool(view["ready"] and view["quorate"] and now < view["lease_deadline"])


def mode(view, now):
    """"run" (start, restart, report), "freeze" (keep and monitor what runs, start nothing)
    or "stop" (stop everything)."""
    if right_to_start(view, now):
        return "run"
    if now < view.get("hold_until", 0.0):
        return "freeze"
    return {"stop": "stop", "freeze": "freeze", "ignore": "run"}[view["policy"]]


def may_start(state, me, view, now, gid):
    """The whole right to start a resource of group gid, at the instant before the start: the
    group's owner in the committed state is me, its persistent state online, and the mode
    "run" (the right to start, or the ignore policy)."""
    g = state["groups"].get(gid) if state is not None and view["ready"] else None
    return bool(g and g["owner"] == me and g["persistent_state"] == "online" and mode(view, now) == "run")


def _high_priority(g, me):
    try:
        return moves.high_priority_on(g, me)
    except Exception:  # (a malformed move: its group is planned as broken below)
        return False


def plan(state, me, view, now, running, errors=None):
    """errors: a list to which (gid, exception) is added for each group whose data the plan
    cannot read; such a group's resources are planned as orphans (stopped), so one group's data
    never keeps the node from planning the others, nor from stopping everything."""
    m = mode(view, now)
    actions = {}
    owned = {} if state is None or not view["ready"] else \
        {gid: g for gid, g in state["groups"].items() if isinstance(g, dict) and g.get("owner") == me and g.get("resources")}
    ours = set()
    starting_groups = {e.group for e in running.values() if e.phase == STARTING}
    slots = view.get("start_slots", 256) - len(starting_groups)
    order = sorted(owned, key=lambda gid: not _high_priority(owned[gid], me))  # (stable: high priority first)
    for gid in order:
        g = owned[gid]
        try:
            action = _group_action(state, g, me, view, now, running, m, may_start=slots > 0 or gid in starting_groups
                                   or _high_priority(g, me))
            ours.update(g["resources"])
        except Exception as e:
            if errors is not None:
                errors.append((gid, e))
            continue
        if action is not None:
            actions[gid] = action
            if action.kind == "start" and gid not in starting_groups:
                slots -= 1
    live = {rid for rid, e in running.items() if e.phase in LIVE}
    for rid in sorted(live - ours, key=str):
        e, key = running[rid], ("orphan", rid)
        if _live_dependents(state, rid, live - ours):
            continue  # dependents first, also when the group is not (or no longer) known as ours
        if not owned and not (state is not None and view["ready"]) and m != "stop" and e.phase == UP:
            action = _monitor_action(key, rid, e, now, ADOPTED_MONITOR_INTERVAL)  # no state yet: kept by the policy
        else:
            action = _stop_action(key, rid, e, now)
        if action is not None:
            actions[key] = action
    return actions


def next_wake(view, now, running):
    """The earliest instant after now at which the plan may change by the clock alone: the lease
    deadline, the hold, a monitor, a restart or a stop retry due (None: nothing is due)."""
    times = [view["lease_deadline"], view.get("hold_until", 0.0), *view.get("held", {}).values()]
    for e in running.values():
        times += [e.next_monitor, e.retry_at] + ([e.restart_at] if e.restart_at is not None else [])
    later = [t for t in times if t > now]
    return min(later) if later else None


def _live_dependents(state, rid, live):
    """The live resources that depend on rid, as far as the state (even a stale one) knows."""
    res = state["resources"] if state is not None else {}
    out = []
    for d in live:
        try:
            if d != rid and rid in res.get(d, {}).get("dependencies", ()):
                out.append(d)
        except (AttributeError, TypeError):  # its data cannot say: not a dependent
            pass
    return out


def _stop_action(key, rid, e, now):
    if e.phase == STOP_FAILED:
        return Action("kill", key, rid) if now >= e.retry_at or e.busy == "kill" else None
    return Action("stop", key, rid)


def _monitor_action(key, rid, e, now, interval):
    if e.phase == UP and (e.busy == "monitor" or now >= e.next_monitor):
        return Action("monitor", key, rid)
    return None


def _must_stop(state, g, running, wanted):
    """The group's resources in the books that must stop: not wanted, or failed (UNKNOWN,
    STOP_FAILED), and everything that depends on one of them or on a wanted resource that does
    not run (a resource runs only while what it depends on runs)."""
    live = {rid for rid in g["resources"] if rid in running and running[rid].phase in LIVE}
    stop = {rid for rid in live if rid not in wanted or running[rid].phase in (UNKNOWN, STOPPING, STOP_FAILED)}
    changed = True
    while changed:
        changed = False
        for rid in live - stop:
            if any(d in stop or (d not in live and d in wanted) for d in state["resources"][rid]["dependencies"]):
                stop.add(rid)
                changed = True
    return stop


def _group_action(state, g, me, view, now, running, m, may_start):
    gid = g["id"]
    order = groups.topo_order(state, g)
    res = state["resources"]
    held = view.get("held", {})
    wanted = groups.wanted_resources(state, g)
    if m == "stop":
        wanted = set()
    elif m == "freeze":
        wanted = {rid for rid in wanted if rid in running and running[rid].phase in (UP, STARTING)}
    # 1. stops, dependents first (a stop in flight goes on to its end)
    stopping = next((rid for rid in order if rid in running and running[rid].busy in ("stop", "kill")), None)
    if stopping is not None:
        return Action(running[stopping].busy, gid, stopping)
    must_stop = _must_stop(state, g, running, wanted)
    for rid in reversed(order):
        if rid in must_stop:
            dependents = [d for d in must_stop if rid in res[d]["dependencies"]]
            if not dependents:
                return _stop_action(gid, rid, running[rid], now)
    if must_stop:
        return None  # (a dependency cycle cannot be: validation refuses it)
    if m != "run":
        for rid in order:
            action = _monitor_action(gid, rid, running[rid], now, res[rid]["monitor_interval"]) \
                if rid in running else None
            if action is not None:
                return action
        return None
    reporting = right_to_start(view, now)
    # 2. reports: what runs here is Online, what failed for good is Failed, what is gone is Offline
    for rid in order:
        e, committed = running.get(rid), res[rid]["state"]
        if not reporting or held.get(rid, 0.0) > now:
            break
        if e is not None and e.phase == UP and committed != "Online":
            return Action("report", gid, (rid, "Online"))
        if e is not None and e.phase == DOWN and e.restart_at is None and committed != "Failed":
            return Action("report", gid, (rid, "Failed"))
        if (e is None or e.phase == DOWN) and rid not in wanted and committed in ("Online", "OnlinePending", "OfflinePending"):
            return Action("report", gid, (rid, "Offline"))
    # 3. starts, in dependency order: the first wanted resource not up whose dependencies are up
    for rid in order:
        e = running.get(rid)
        if rid not in wanted or (e is not None and e.phase == UP):
            continue
        if e is not None and e.phase == STARTING:
            return Action("start", gid, rid)
        if e is not None and e.phase == DOWN and (e.restart_at is None or e.restart_at > now):
            break  # its restart is not due (or there is none): the rest of the group waits
        if held.get(rid, 0.0) > now or not may_start:
            break
        if all(d in running and running[d].phase == UP for d in res[rid]["dependencies"]):
            return Action("start", gid, rid)
        break
    # 4. monitors of what runs
    for rid in order:
        action = _monitor_action(gid, rid, running[rid], now, res[rid]["monitor_interval"]) if rid in running else None
        if action is not None:
            return action
    # 5. a move's question, once the group is settled
    question = moves.question_for(g, me)
    if question is not None and question not in view.get("answered", ()):
        return Action("ask", gid, tuple(question))
    return None
