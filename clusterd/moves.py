"""The interim group move (pure handlers): source stops, owner flips, destination starts.

TO BE REPLACED by Group.move (the two-phase, leader-driven move built on another branch):
mover.request_move() is the one place that calls these, and drain and switchover call only it.

group.move_begin marks groups as moving to a destination; while a group is moving nothing of
it is wanted anywhere (groups.wanted_resources), so its owner's executor stops its resources
and keeps its persistent state. group.move_finish flips the owner only once every resource of
the group is Offline or Failed (the source has stopped: never two nodes at once); then the new
owner's executor starts them. group.move_abort gives the group back to its owner.
"""
from .db import handler, ok
from .domains import owner_changed
from .errors import failure
from .groups import _refresh

STOPPED = ("Offline", "Failed")


def _stopped(state, g):
    return all(state["resources"][r]["state"] in STOPPED for r in g["resources"])


def _flip(state, g, to, at):
    frm = g["owner"]
    g["owner"], g["moving"] = to, None
    for rid in g["resources"]:
        r = state["resources"][rid]
        r["pid"], r["restarts"] = None, []
        if r["state"] == "Failed":  # a move restarts what failed where it was (as Group.move does)
            r["state"] = "Offline"
    owner_changed(g, to)
    g["last_move"] = {"from": frm, "to": to, "at": at}
    _refresh(state, g)


@handler("group.move_begin")
def _move_begin(state, cmd):
    """Per move {group, to}: "moved" (nothing ran: the owner flipped at once), "moving", or
    an error string. One command for many groups (a drain moves hundreds)."""
    out = []
    for m in cmd["moves"]:
        g = state["groups"].get(m.get("group"))
        if g is None:
            out.append("no such group")
        elif m.get("to") not in state["members"]:
            out.append("no such node")
        elif g["owner"] == m["to"] and not g.get("moving"):
            out.append("moved")
        elif g.get("moving"):
            out.append("moving" if g["moving"]["to"] == m["to"] else "the group is moving elsewhere")
        elif g["persistent_state"] != "online" or not g["resources"] or _stopped(state, g):
            _flip(state, g, m["to"], cmd["at"])
            out.append("moved")
        else:
            g["moving"] = {"from": g["owner"], "to": m["to"], "at": cmd["at"]}
            _refresh(state, g)
            out.append("moving")
    return ok(out)


@handler("group.move_finish")
def _move_finish(state, cmd):
    """Per group: "moved", "stopping" (its source has not stopped yet) or an error string."""
    out = []
    for gid in cmd["groups"]:
        g = state["groups"].get(gid)
        if g is None or not g.get("moving"):
            out.append("not moving")
        elif not _stopped(state, g):
            out.append("stopping")
        else:
            _flip(state, g, g["moving"]["to"], cmd["at"])
            out.append("moved")
    return ok(out)


@handler("group.move_abort")
def _move_abort(state, cmd):
    g = state["groups"].get(cmd.get("group"))
    if g is None or not g.get("moving"):
        return failure("ERROR_INVALID_PARAMETER", str(cmd.get("group")), message="the group is not moving")
    g["moving"] = None
    _refresh(state, g)
    return ok()
