"""Failover in the cluster database: fencing records, and moving a lost node's groups.

Pure handlers and pure decisions; the coordinator (coordinator.py) runs them on the leader.
A group moves off a node only after that node is fenced (DESIGN.md invariant 4): the fence
request and its result are committed entries, and `group.failover` refuses a group whose
owner is not fenced.
"""
from .db import handler, ok
from .domains import owner_changed
from .errors import failure
from .groups import find_group, _refresh
from .pause import node_record


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


@handler("fence.request")
def _fence_request(state, cmd):
    if cmd["node"] not in state["members"]:
        return failure("HANDLE_INVALID", "host", cmd["node"])
    if cmd["node"] in state["view"]["live"]:
        return failure("INVALID_VALUE", cmd["node"], message="a live node is not fenced")
    # the daemon incarnation this fence is for: a fence never acts on a later one (member.hello
    # of a restarted daemon ends the fence record)
    state["fence"][cmd["node"]] = {"status": "requested", "agent": cmd["agent"], "at": cmd["at"], "detail": "",
                                   "attempts": state["fence"].get(cmd["node"], {}).get("attempts", 0) + 1,
                                   "process": state["members"][cmd["node"]].get("process")}
    return ok()


@handler("fence.result")
def _fence_result(state, cmd):
    f = state["fence"].get(cmd["node"])
    if f is None or f["status"] != "requested":
        return failure("INVALID_VALUE", cmd["node"], message="no fence of that node is in progress")
    f["status"] = "fenced" if cmd["fenced"] else "failed"
    f["detail"], f["done_at"] = cmd["detail"], cmd["at"]
    return ok()


@handler("group.failover")
def _group_failover(state, cmd):
    """Restart a lost group on cmd["to"], with its reason; past the failover threshold within
    the period, the group stays Failed where it was."""
    g = find_group(state, cmd["group"])
    if g is None:
        return failure("ERROR_GROUP_NOT_FOUND", cmd["group"])
    if g["owner"] != cmd["from"]:
        return failure("INVALID_VALUE", cmd["group"], message="the group moved meanwhile")
    if cmd["from"] in state["view"]["live"] and cmd["reason"] == "node down":
        return failure("INVALID_VALUE", cmd["from"], message="the owner is up again")
    if cmd["reason"] == "node down" and not fenced(state, cmd["from"]):
        return failure("INVALID_VALUE", cmd["from"], message="the owner is not fenced")
    if cmd["reason"] == "resource failed" and not g.get("failover_wanted"):
        return failure("INVALID_VALUE", cmd["group"], message="no resource of the group asked to fail over")
    if cmd["to"] not in state["members"]:
        return failure("ERROR_CLUSTER_NODE_DOWN", message="no node can host the group")
    if node_record(state, cmd["to"])["paused"]:  # paused since placement chose it
        return failure("ERROR_CLUSTER_NODE_PAUSED", cmd["to"], message="the destination node is paused")
    g["failover_wanted"] = False
    period = g["failover"]["period_hours"] * 3600
    recent = [t for t in g["failures"] if cmd["at"] - t < period]
    g["failures"] = recent + [cmd["at"]]
    for rid in g["resources"]:
        r = state["resources"][rid]
        r["pid"], r["restarts"] = None, []
        r["state"] = "Failed" if len(recent) >= g["failover"]["threshold"] else "Offline"
    if len(recent) < g["failover"]["threshold"]:
        g["owner"] = cmd["to"]
        owner_changed(g, cmd["to"])  # a recovery domain's first backup becomes primary
        g["last_failover"] = {"from": cmd["from"], "to": cmd["to"], "reason": cmd["reason"], "at": cmd["at"]}
    _refresh(state, g)
    return ok(g["owner"])
