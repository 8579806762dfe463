"""What the leader does, as one pure function: decide(state, view, now, in_flight) -> Decision.

Level-triggered: on every wake the coordinator calls it again with the committed state, its
own measured view and what it already has under way, and carries out what comes back
(coordinator.py: fences and commands; mover.py: the moves, which wait for their hand-over).
No clock and no I/O in here: `now` is the leader's monotonic clock, and how long a condition
has held comes from `in_flight["since"]`, which the shell keeps from the keys this function
returns in `watch` (a new leader starts those clocks again, so it only ever waits longer).

    view       {"live": [names the leader hears], "hour": local hour of the day (failback
               windows), "retry_after": seconds before a queued move is asked again}
    in_flight  {"busy": task keys running, "fencing": nodes a fence agent works on,
               "since": {watch key: the `now` it was first seen}}

The duties, each isolated per group and per node so that one bad record only skips itself
(Decision.errors) and never stops the others:

- a lost node's online groups: fence it (again RETRY after a failed fence), and once fenced,
  fail its groups over (through the recovery domain's exit programs when it has one);
- a group whose resource failed past its restart policy on a live owner: group.failover with
  reason "resource failed", which is a hand-over (moves.py): the source stops the whole group
  and reports it Offline, then the destination starts it;
- a move whose live source has not handed over within its stop bound (timing.group_stop_bound
  plus timing.MARGIN): fence the source (a live fence: the leader grants it no lease), then
  place the group; once nothing waits on the source any more, clear that fence record so the
  node can hold a lease again;
- moves: abandon those whose group changed owner under them, ask queued ones again;
- drains (ApiPauseNodeEx), failbacks after a resume, failback by group policy, and the steps
  of recovery-domain requests (their move, and exit programs of nodes no longer active).
"""
from dataclasses import dataclass, field

from . import domains, failover, moves, pause, placement, timing

RETRY = 2.0  # seconds between attempts at a fence that failed
HANDED_OVER_WITHIN = timing.MARGIN  # seconds past a group's stop bound before its source is fenced


@dataclass
class Decision:
    commands: list = field(default_factory=list)  # committed commands: {"op", ...}; handle None = a new one
    fences: list = field(default_factory=list)  # {"node", "requested": already committed, "live": a hand-over fence}
    tasks: list = field(default_factory=list)  # {"kind": drain|failback|move|switchover, "key", ...}
    watch: set = field(default_factory=set)  # keys of the conditions that hold now
    errors: list = field(default_factory=list)  # [(what, why)]: skipped because its data made the decision fail


class _Step:
    def __init__(self, state, view, now, in_flight):
        self.s, self.now, self.d = state, now, Decision()
        self.live = set(view["live"])
        self.hour, self.retry_after = view.get("hour", 0), view.get("retry_after", 0.5)
        self.busy = set(in_flight.get("busy", ()))
        self.fencing = set(in_flight.get("fencing", ()))
        self.since = in_flight.get("since", {})
        self.fenced_here = set()  # nodes this step already decided to fence

    def held(self, key):
        """How long the condition `key` has held (0 the first time), and keep watching it."""
        self.d.watch.add(key)
        return self.now - self.since.get(key, self.now)

    def isolated(self, what, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001  one record's data must not stop the leader's duties
            self.d.errors.append((what, f"{type(e).__name__}: {e}"))

    def write(self, op, **fields):
        self.d.commands.append({"op": op, **fields})

    def task(self, kind, key, **fields):
        if key not in self.busy:
            self.d.tasks.append({"kind": kind, "key": key, **fields})

    def fence(self, node, requested=False, live=False):
        if node not in self.fencing and node not in self.fenced_here:
            self.fenced_here.add(node)
            self.d.fences.append({"node": node, "requested": requested, "live": live})


def decide(state, view, now, in_flight):
    step = _Step(state, view, now, in_flight)
    for name in list(state["members"]):
        step.isolated(f"node {name}", _node_duties, step, name)
    for gid, g in list(state["groups"].items()):
        step.isolated(f"group {gid}", _group_duties, step, g)
    for handle, req in list(state.get("domain_requests", {}).items()):
        if req.get("status") == "pending":
            step.isolated(f"request {handle}", _request_duties, step, handle, req)
    return step.d


# -- per node -----------------------------------------------------------------------------------
def _node_duties(step, name):
    s, rec = step.s, pause.node_record(step.s, name)
    if rec["drain"] == "InProgress":
        _drain(step, name, rec)
    if rec["failback"] and not rec["paused"]:
        back = [(gid, s["groups"][gid]["owner"]) for gid in rec["failback"] if gid in s["groups"]]
        step.task("failback", f"failback:{name}", node=name, moves=[[gid, owner] for gid, owner in back
                                                                   if owner != name],
                  groups=[gid for gid, _ in back] or list(rec["failback"]))
    fence = s["fence"].get(name)
    if fence and fence.get("live") and fence["status"] != "requested" and name not in step.fencing \
            and not failover.handing_over(s, name):
        step.write("fence.clear", node=name)  # nothing waits on its hand-over any more: it may hold a lease


def _drain(step, name, rec):
    out, kept = drain_plan(step.s, step.live, name)
    step.task("drain", f"drain:{name}", node=name, moves=out, kept=kept)


def drain_plan(s, live, name, only=None):
    """Where each group of a draining node goes (those in `only` when given): ([[group id,
    destination, move flags]], [group ids kept]). Without CLUSAPI_NODE_PAUSE_REMAIN_ON_PAUSED_
    NODE_ON_MOVE_ERROR (0x1) a group moves anyway (ApiPauseNodeEx): placement without its policy
    when the policy leaves no node, and a move that does not ask its resources (a locked resource
    or one that rejects the move does not keep it), as CLUSAPI_GROUP_MOVE_IGNORE_RESOURCE_STATUS.
    With 0x1 the moves ask the resources, and a group they refuse stays (mover.py: kept)."""
    remain = pause.node_record(s, name)["flags"] & pause.REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR
    flags = 0 if remain else moves.IGNORE_RESOURCE_STATUS
    load = placement.node_load(s)
    out, kept = [], []
    for gid in pause.owned_groups(s, name):
        if only is not None and gid not in only:
            continue
        g = s["groups"][gid]
        if g.get("move"):  # an earlier leader started this move: follow it
            out.append([gid, g["move"]["to"], g["move"]["flags"]])
            continue
        dest = placement.place_group(s, live, g, exclude=[name], load=load)
        if dest is None and not remain:
            dest = placement.place_group(s, live, g, exclude=[name], load=load, policy=False)
        if dest is None:
            kept.append(gid)
            continue
        load[0][dest] += 1
        out.append([gid, dest, flags])
    return out, kept


def _lost_node(step, down, group_ids):
    fence = step.s["fence"].get(down)
    if fence is None or fence["status"] == "failed" and step.held(f"fence-failed:{down}") >= RETRY:
        step.fence(down)
    elif fence["status"] == "requested":
        step.fence(down, requested=True)  # one an earlier leader started: run it again here
    elif fence["status"] == "fenced":
        for gid in group_ids:
            step.isolated(f"group {gid}", _fail_over, step, step.s["groups"][gid], down, "node down")


# -- per group ----------------------------------------------------------------------------------
def _group_duties(step, g):
    s, owner = step.s, g["owner"]
    m = g.get("move")
    if m is not None:
        _move_duties(step, g, m)
    elif owner and owner not in step.live and g["persistent_state"] == "online" and not g["special"]:
        _lost_node(step, owner, [g["id"]])
    elif g.get("failover_wanted") and owner in step.live and g["persistent_state"] == "online":
        _fail_over(step, g, owner, "resource failed")
    else:
        dest = placement.failback_move(s, step.live, step.hour, g)
        if dest is not None:
            step.task("move", f"failback-group:{g['id']}", group=g["id"], to=dest, flags=0, why="failback policy")


def _move_duties(step, g, m):
    source_phase = m["phase"] in moves.SOURCE_PHASES
    if g["owner"] != (m["from"] if source_phase else m["to"]):
        step.write("group.move_abandon", group=g["id"], handle=m["handle"], reason="owner changed")
    elif m["phase"] == "queued":
        if step.held(f"queued:{m['handle']}") >= step.retry_after:
            step.write("group.move_retry", group=g["id"], handle=m["handle"])
    elif m["phase"] == "stopping" and m["from"] in step.live:
        _hand_over_due(step, g, m)
    elif g["owner"] not in step.live and g["persistent_state"] == "online" and not g["special"]:
        _lost_node(step, g["owner"], [g["id"]])


def _hand_over_due(step, g, m):
    """The live source stops the group for its hand-over; past its stop bound it is fenced,
    and once fenced the group is placed without it."""
    src = m["from"]
    fence = step.s["fence"].get(src)
    if fence is not None and fence["status"] == "fenced":
        _fail_over(step, g, src, "not handed over")
    elif fence is not None and fence["status"] == "requested":
        step.fence(src, requested=True, live=True)
    elif step.held(f"stopping:{m['handle']}") > timing.group_stop_bound(step.s, g) + HANDED_OVER_WITHIN:
        if fence is None or step.held(f"fence-failed:{src}") >= RETRY:
            step.fence(src, live=True)


def _fail_over(step, g, source, reason):
    """Fail `g` over from `source`: to the node placement chooses (the move's destination when
    the source did not hand over and it can still host the group)."""
    s = step.s
    m = g.get("move")
    to = None
    if reason == "not handed over" and m and m["to"] in step.live and not pause.node_record(s, m["to"])["paused"]:
        to = m["to"]
    to = to or placement.place_group(s, step.live, g, exclude=[source])
    if to is None:
        step.d.errors.append((f"group {g['id']}", f"lost with {source}: no node can host it"))
        return
    how = domains.failover_domain(s, g["id"])
    if how == "busy":
        return  # its exit programs are running (or another request ends first)
    if how == "exit" and reason != "not handed over":  # the exit programs first (action Failover)
        step.write("domain.request", kind="failover", group=g["id"], queue=domains.FAILOVER_QUEUE, handle=None,
                   node=to, reason=reason, **{"from": source})
        return
    fields = {"handle": None} if reason == "resource failed" else {}  # a hand-over is a move: its operation
    step.write("group.failover", group=g["id"], to=to, reason=reason, **{"from": source}, **fields)


# -- recovery-domain requests -------------------------------------------------------------------
def _request_duties(step, handle, req):
    if req["phase"] == "move":
        step.task("switchover", f"request:{handle}", handle=handle)
    elif req["phase"] in ("exit", "undo"):
        for n in req["participants"]:
            if n not in req["results"] and n not in step.live:
                step.write("domain.exit_result", rid=f"{handle}-{req['phase']}-{n}", handle=handle,
                           phase=req["phase"], node=n, ok=False, detail=f"{n} is no longer active")

