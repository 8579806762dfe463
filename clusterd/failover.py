"""Failover in the cluster database: fencing records, and moving a lost node's groups.

Pure handlers and pure decisions; the coordinator (coordinator.py) runs them on the leader.
A group moves off a node only after that node is fenced (docs/architecture.md, invariant 4):
the fence request and its result are committed entries, and `group.failover` refuses a group
whose owner is not fenced.
"""
from . import moves, policy
from .cluster import set_forgotten
from .commands import handler, ok
from .domains import owner_changed
from .errors import failure
from .groups import find_group, _refresh
from .pause import node_record

REASONS = ("node down", "resource failed", "not handed over")


def lost_groups(state):
    """Per node that the committed view says is down: its groups that should be online."""
    live = set(state["view"]["live"])
    lost = {}
    for g in state["groups"].values():
        if g["owner"] and g["owner"] not in live and g["persistent_state"] == "online" and not g["special"]:
            lost.setdefault(g["owner"], []).append(g["id"])
    return lost


def failed_groups(state):
    """Groups whose resource failed past its restart policy on a live owner: to move."""
    live = set(state["view"]["live"])
    return [(g["id"], g["owner"]) for g in state["groups"].values()
            if g.get("failover_wanted") and g["owner"] in live and g["persistent_state"] == "online"]


def handing_over(state, node):
    """Some group waits on live `node` to hand it over: a move in a phase where it is the source."""
    return any(g.get("move") and g["move"]["from"] == node == g["owner"] and g["move"]["phase"] in moves.SOURCE_PHASES
               for g in state["groups"].values())


def fenced(state, node):
    f = state["fence"].get(node)
    return f is not None and f["status"] == "fenced"


@handler("member.hello")
def _member_hello(state, cmd):
    """A daemon announces the process it runs as (the process fence agent needs it)."""
    if cmd["name"] not in state["members"]:
        return failure("HANDLE_INVALID", "host", cmd["name"])
    state["members"][cmd["name"]]["process"] = {"pid": cmd["pid"], "create_time": cmd["create_time"],
                                                "data_dir": cmd.get("data_dir")}
    state["fence"].pop(cmd["name"], None)  # a new incarnation: an old fence no longer speaks for it
    return ok()


def _new_fence(state, node, agent, at, process, live=False):
    """A fence of `node` requested, for the daemon incarnation `process`: a fence never acts on
    a later one (member.hello of a restarted daemon ends the fence record)."""
    state["fence"][node] = {"status": "requested", "agent": agent, "at": at, "detail": "",
                            "attempts": state["fence"].get(node, {}).get("attempts", 0) + 1,
                            "process": process, "live": live}


@handler("fence.request")
def _fence_request(state, cmd):
    member, earlier = state["members"].get(cmd["node"]), state["fence"].get(cmd["node"])
    if member is None and earlier is None:  # (a removed node keeps its fence record: member.remove)
        return failure("HANDLE_INVALID", "host", cmd["node"])
    live = bool(cmd.get("live"))  # a live source that did not hand over within its stop bound
    if cmd["node"] in state["view"]["live"] and not (live and handing_over(state, cmd["node"])):
        return failure("INVALID_VALUE", cmd["node"], message="a live node is fenced only when it does not hand over")
    _new_fence(state, cmd["node"], cmd["agent"], cmd["at"], (member or earlier).get("process"), live)
    return ok()


@handler("member.remove")
def _member_remove(state, cmd):
    """The member goes. What it owned does not stay with a node that is gone: a group that runs
    nowhere (offline, every resource offline, no move) loses its owner, and the next online
    places it; if any other group is left, its fence is requested here, so that the leader
    fences the removed node and then fails its groups over as it does a lost node's."""
    name = cmd["name"]
    if name not in state["members"]:
        return failure("HANDLE_INVALID", "host", name)
    if len(state["members"]) == 1:
        return failure("CLUSTER_HOST_IS_LAST", name)
    member = state["members"].pop(name)
    c = state["cluster"]
    if c is not None:  # forgotten and now removed: no longer pending
        set_forgotten(state, [n for n in c.get("forgotten", []) if n != name])
    state["cluster_hosts"] = {r: ch for r, ch in state["cluster_hosts"].items() if ch["host"] != name}
    state["view"]["live"] = [n for n in state["view"]["live"] if n != name]
    owned = [g for g in state["groups"].values() if g["owner"] == name and not g["special"]]
    for g in owned:
        if g["persistent_state"] == "offline" and g["state"] == "Offline" and not g.get("move"):
            g["owner"] = None
            _refresh(state, g)
    if any(g["owner"] == name for g in owned) and not fenced(state, name):
        _new_fence(state, name, cmd.get("agent"), cmd.get("at"), member.get("process"))
    return ok()


@handler("fence.clear")
def _fence_clear(state, cmd):
    """End a hand-over fence once no group waits on the node's hand-over: it may hold a lease again
    (a fence record blocks the leader's grants, lease.py)."""
    f = state["fence"].get(cmd["node"])
    if f is None or not f.get("live") or f["status"] == "requested" or handing_over(state, cmd["node"]):
        return failure("INVALID_VALUE", cmd["node"], message="no finished hand-over fence of that node")
    del state["fence"][cmd["node"]]
    return ok()


@handler("fence.result")
def _fence_result(state, cmd):
    f = state["fence"].get(cmd["node"])
    if f is None or f["status"] != "requested":
        return failure("INVALID_VALUE", cmd["node"], message="no fence of that node is in progress")
    f["status"] = "fenced" if cmd["fenced"] else "failed"
    f["detail"], f["done_at"] = cmd["detail"], cmd["at"]
    return ok()


def _failover_refusal(state, g, cmd):
    reason, src = cmd.get("reason"), cmd.get("from")
    if reason not in REASONS:
        return failure("INVALID_VALUE", "reason", str(reason))
    if g["owner"] != src:
        return failure("INVALID_VALUE", cmd["group"], message="the group moved meanwhile")
    if src in state["view"]["live"] and reason == "node down":
        return failure("INVALID_VALUE", src, message="the owner is up again")
    if reason in ("node down", "not handed over") and not fenced(state, src):
        return failure("INVALID_VALUE", src, message="the owner is not fenced")
    m = g.get("move")
    if reason == "not handed over" and not (m and m["from"] == src and m["phase"] in moves.SOURCE_PHASES):
        return failure("INVALID_VALUE", cmd["group"], message="the group does not wait on a hand-over")
    if reason == "resource failed":
        if not g.get("failover_wanted"):
            return failure("INVALID_VALUE", cmd["group"], message="no resource of the group asked to fail over")
        if m is not None:
            return failure("ERROR_INVALID_STATE", g["name"], message="a move of the group is already in progress")
        if not isinstance(cmd.get("handle"), str) or cmd["handle"] in state["operations"]:
            return failure("INVALID_VALUE", "handle", message="a hand-over is a move: a new operation handle")
    if cmd["to"] not in state["members"] or reason == "resource failed" and cmd["to"] not in state["view"]["live"]:
        return failure("ERROR_CLUSTER_NODE_DOWN", message="no node can host the group")
    if node_record(state, cmd["to"])["paused"]:  # paused since placement chose it
        return failure("ERROR_CLUSTER_NODE_PAUSED", cmd["to"], message="the destination node is paused")
    return None


@handler("group.failover")
def _group_failover(state, cmd):
    """Fail a group over from cmd["from"] to cmd["to"], with its reason; past the failover
    threshold within the period, the group stays Failed where it was. A group leaves a live
    owner only by hand-over: for "resource failed" this starts a move (moves.py) in which the
    source stops the whole group and reports it Offline before the destination starts it. From
    a fenced owner ("node down", or "not handed over": a live source that did not hand over
    within its stop bound) the group is placed at once."""
    g = find_group(state, cmd["group"])
    if g is None:
        return failure("ERROR_GROUP_NOT_FOUND", cmd["group"])
    refused = _failover_refusal(state, g, cmd)
    if refused:
        return refused
    g["failover_wanted"] = False
    past = policy.failovers_exhausted(g, cmd["at"])
    g["failures"] = policy.recent_failovers(g, cmd["at"]) + [cmd["at"]]
    if cmd["reason"] == "not handed over":  # the source did not hand over; it is fenced
        moves.end_move(state, g, "failed", "the source did not hand over within its stop bound; it was fenced")
    if not past and cmd["reason"] == "resource failed":
        g["last_failover"] = {"from": cmd["from"], "to": cmd["to"], "reason": cmd["reason"], "at": cmd["at"]}
        return moves.begin(state, g, cmd["handle"], cmd["to"], moves.IGNORE_RESOURCE_STATUS, {}, cmd["at"])
    for rid in g["resources"]:
        r = state["resources"][rid]
        r["pid"], r["restarts"] = None, []
        r["state"] = "Failed" if past else "Offline"
    if not past:
        g["owner"] = cmd["to"]
        owner_changed(g, cmd["to"])  # a recovery domain's first backup becomes primary
        g["last_failover"] = {"from": cmd["from"], "to": cmd["to"], "reason": cmd["reason"], "at": cmd["at"]}
    _refresh(state, g)
    return ok(g["owner"])
