"""Pausing, draining and resuming nodes (MS-CMRP ApiPauseNodeEx): the pure handlers.

Per member, a record in state["nodes"]: paused, the drain status (NotInitiated, InProgress,
Completed, Failed), the pause flags, how many groups the node owned when the drain began, and,
after a resume, the groups to fail back. A paused node keeps what it runs unless drained, and
placement never chooses it (placement.py). The leader's coordinator does the moving (mover.py)
and commits node.drain_done; every refusal below happens before anything changes.

"Evacuation in progress" (0x174A) means: the node's drain status is InProgress; or it is Failed,
the new drain is without the 0x1 flag and the node still hosts a group. The page: "for evacuation
to not be in progress, [...] if the dwPauseFlags parameter does not include the
CLUSAPI_NODE_PAUSE_REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR flag, the node [...] cannot host any
groups". A Failed drain did not finish what it was asked, so it stays in progress for a new
flags-0 drain until the node hosts no group, or a resume ends it (NotInitiated). A Completed
drain finished (with 0x1 the groups it kept were allowed to stay): a new drain starts a new
evacuation. By the page's rule a drain leaves InProgress as Completed only when, without the
0x1 flag, the node hosts no group any more (with it: none but those policy keeps there);
otherwise it ends Failed.
"""
from .commands import handler, ok
from .errors import failure

DRAIN_STATES = ("NotInitiated", "InProgress", "Completed", "Failed")
REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR = 0x1  # CLUSAPI_NODE_PAUSE_REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR
FAILBACK = ("none", "immediate", "policy")


def node_record(state, name):
    """The pause record of a member (a default one when it was never paused)."""
    rec = state.get("nodes", {}).get(name)
    return rec if rec is not None else {"paused": False, "drain": "NotInitiated", "flags": 0, "total": 0,
                                        "kept": [], "moved": [], "failback": [], "detail": ""}


def _record(state, name):
    return state.setdefault("nodes", {}).setdefault(name, dict(node_record(state, name)))


def paused_nodes(state):
    return {n for n, r in state.get("nodes", {}).items() if r["paused"]}


def node_state(state, name):
    """ClusterNodeUp, ClusterNodeDown or ClusterNodePaused, from the committed view."""
    if name not in state["view"]["live"]:
        return "Down"
    return "Paused" if node_record(state, name)["paused"] else "Up"


def owned_groups(state, name):
    return [g["id"] for g in state["groups"].values() if g["owner"] == name]


def _valid_flags(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _needs_pause(state, cmd):
    name = cmd.get("node")
    if not isinstance(name, str) or name not in state["members"]:
        return failure("ERROR_INVALID_HANDLE", name if isinstance(name, str) else repr(name))
    if not isinstance(cmd.get("drain"), bool):
        return failure("ERROR_INVALID_PARAMETER", "drain")
    if not cmd["drain"]:
        return None  # flags are ignored entirely when not draining
    if not _valid_flags(cmd.get("flags")) or cmd["flags"] not in (0, REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR):
        return failure("ERROR_INVALID_PARAMETER", "flags", message="flags are 0 or 0x1 (REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR)")
    drain = node_record(state, name)["drain"]
    if drain == "InProgress":
        return failure("ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS", name)
    if drain == "Failed" and not cmd["flags"] & REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR and owned_groups(state, name):
        return failure("ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS", name, message=(
            "the node's last drain failed and it still hosts groups: the evacuation is in progress until it "
            "hosts none (move them, drain with 0x1, or resume the node)"))
    if not any(node_state(state, n) == "Up" for n in state["members"] if n != name):
        return failure("ERROR_CLUSTER_NODE_DOWN", name, message="no node other than this one is Up")
    return None


@handler("node.pause", needs=_needs_pause)
def _node_pause(state, cmd):
    rec = _record(state, cmd["node"])
    was_paused, rec["paused"] = rec["paused"], True
    if not cmd["drain"]:
        return ok({"status": "ERROR_SUCCESS", "code": 0})
    # a drain again while still paused adds to what earlier drains moved (resume fails it all back)
    rec.update(drain="InProgress", flags=cmd["flags"], total=len(owned_groups(state, cmd["node"])),
               kept=[], moved=rec["moved"] if was_paused else [], failback=[], detail="", started_at=cmd["at"],
               ended_at=None)
    return ok({"status": "ERROR_IO_PENDING", "code": 0x3E5})


def _needs_member(state, cmd):
    name = cmd.get("node")
    if not isinstance(name, str) or name not in state["members"]:
        return failure("ERROR_INVALID_HANDLE", name if isinstance(name, str) else repr(name))
    return None


def _needs_resume(state, cmd):
    refused = _needs_member(state, cmd)
    if refused:
        return refused
    if cmd.get("failback") not in FAILBACK:
        return failure("ERROR_INVALID_PARAMETER", "failback", message="failback is none, immediate or policy")
    return None


@handler("node.resume", needs=_needs_resume)
def _node_resume(state, cmd):
    """Resume: the node may host groups again; a running drain stops (NotInitiated). With
    failback immediate, the groups the drain moved away come back; with policy, those whose
    failover policy says failback immediate."""
    rec = _record(state, cmd["node"])
    moved = [gid for gid in rec["moved"] if gid in state["groups"]]
    if cmd["failback"] == "immediate":
        back = moved
    elif cmd["failback"] == "policy":
        back = [gid for gid in moved if state["groups"][gid]["failover"]["failback"] == "immediate"]
    else:
        back = []
    rec.update(paused=False, drain="NotInitiated", failback=back, moved=[], kept=[], total=0, detail="")
    return ok({"failback": len(back)})


def _needs_drain(state, cmd):
    refused = _needs_member(state, cmd)
    if refused:
        return refused
    if node_record(state, cmd["node"])["drain"] != "InProgress":
        return failure("ERROR_INVALID_PARAMETER", cmd["node"], message="no drain of that node is in progress")
    return None


@handler("node.drain_done", needs=_needs_drain)
def _drain_done(state, cmd):
    """The coordinator ends a drain: Completed only when the node hosts no group any more
    (with the 0x1 flag: none but those it reported kept), else Failed."""
    rec = _record(state, cmd["node"])
    left = set(owned_groups(state, cmd["node"]))
    kept = [gid for gid in cmd.get("kept", []) if gid in left]
    allowed = set(kept) if rec["flags"] & REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR else set()
    done = cmd["status"] == "Completed" and left <= allowed
    rec.update(drain="Completed" if done else "Failed", kept=kept, ended_at=cmd["at"],
               moved=[gid for gid in dict.fromkeys(rec["moved"] + cmd.get("moved", [])) if gid in state["groups"]],
               detail=cmd.get("detail", "") if not done or cmd.get("detail") else "")
    if cmd["status"] == "Completed" and not done:
        rec["detail"] = f"{len(left - allowed)} group(s) still on the node"
    return ok(rec["drain"])


@handler("node.failback_done", needs=_needs_member)
def _failback_done(state, cmd):
    rec = _record(state, cmd["node"])
    rec["failback"] = [g for g in rec["failback"] if g not in cmd["groups"]]
    return ok()


def pause_view(state, name):
    """The node's pause record as clients see it, with the drain's progress."""
    rec = node_record(state, name)
    owned = owned_groups(state, name)
    remaining = len([g for g in owned if g not in rec["kept"]]) if rec["drain"] == "InProgress" else len(owned)
    return {"node": name, "state": node_state(state, name), "paused": rec["paused"], "drain_status": rec["drain"],
            "flags": rec["flags"], "total": rec["total"], "groups": len(owned), "remaining": remaining,
            "kept": len(rec["kept"]), "detail": rec["detail"], "failback_pending": len(rec["failback"])}
