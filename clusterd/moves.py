"""Moving a group (MoveClusterGroupEx, wsfc-MoveClusterGroupEx.txt): the pure handlers.

A move is a record on its group, group["move"] = {handle, from, to, flags, properties, phase,
asks, queued_at}, and an operation (target "move") that Operation.wait follows. Every step is
a committed command, so a new leader or a restarted daemon resumes where things stood:

    asking    the source's executor asks each online resource's agent whether it may move
              (agent.prepare_move) and commits the answer (group.move_answer):
              ok -> stopping; not_now -> queued (0x4) or the move ends refused;
              reject -> the move ends, the group stays as it is, no failure counted.
              With IGNORE_RESOURCE_STATUS (0x1) nobody is asked: straight to stopping.
    queued    the leader's MoveDriver asks again every token/2 (group.move_retry) until the
              answer is ok or a client cancels (group.cancel_move).
    stopping  the source stops the group (wanted_resources() is empty there). When the source
              reports every resource Offline or Failed, the report itself hands the group over
              (owner := destination). The destination never starts before the source stopped.
    starting  the destination starts it with the move's property list. Its persistent state
              reached -> the operation succeeded. A resource Failed -> without 0x2 the move
              fails and the normal policy (restart, failover) takes over; with 0x2 ->
    undoing   the destination stops what it still runs; then owner := source, and
    returning the source brings it to its persistent state (the operation ends failed either
              way: the group did not reach its state on the destination); failing there too,
              the normal policy takes over.

A destination that is down or paused when the hand-over is due gets nothing: the move fails and
the group stays on the source, which brings it back to its persistent state (a queued move
waits while its destination is not Up; a return to a source that is not Up any more is left
to the failure policy). A group that runs nothing when the move is accepted is handed over at
once. If the group's owner changes under a move (a failover after fencing), the leader abandons
the move.
"""
import math

from .commands import handler, ok
from .domains import owner_changed
from .errors import failure
from .groups import REPORT_HOOKS, _refresh, clear_failures, find_group, moving_away, running, wanted_resources  # noqa: F401
from .pause import node_record, node_state

IGNORE_RESOURCE_STATUS = 0x1  # CLUSAPI_GROUP_MOVE_IGNORE_RESOURCE_STATUS
RETURN_TO_SOURCE_NODE_ON_ERROR = 0x2  # CLUSAPI_GROUP_MOVE_RETURN_TO_SOURCE_NODE_ON_ERROR
QUEUE_ENABLED = 0x4  # CLUSAPI_GROUP_MOVE_QUEUE_ENABLED
HIGH_PRIORITY_START = 0x8  # CLUSAPI_GROUP_MOVE_HIGH_PRIORITY_START
FAILBACK = 0x10  # CLUSAPI_GROUP_MOVE_FAILBACK: reserved, refused
FLAGS = {
    "CLUSAPI_GROUP_MOVE_IGNORE_RESOURCE_STATUS": IGNORE_RESOURCE_STATUS,
    "CLUSAPI_GROUP_MOVE_RETURN_TO_SOURCE_NODE_ON_ERROR": RETURN_TO_SOURCE_NODE_ON_ERROR,
    "CLUSAPI_GROUP_MOVE_QUEUE_ENABLED": QUEUE_ENABLED,
    "CLUSAPI_GROUP_MOVE_HIGH_PRIORITY_START": HIGH_PRIORITY_START,
}
ALLOWED_FLAGS = IGNORE_RESOURCE_STATUS | RETURN_TO_SOURCE_NODE_ON_ERROR | QUEUE_ENABLED | HIGH_PRIORITY_START

# The property list. A value is a plain scalar, or {"format": CLUSPROP_FORMAT_..., "value": v}.
# The live-migration recipe: {"Virtual Machine": {"format": "CLUSPROP_FORMAT_DWORD", "value": 4}}.
# VmResdllContextLiveMigration = 4 in the VM_RESDLL_CONTEXT enumeration (resapi.h):
# https://learn.microsoft.com/en-us/previous-versions/windows/desktop/api/ResApi/ne-resapi-vm_resdll_context
VM_RESDLL_CONTEXT = {"VmResdllContextTurnOff": 0, "VmResdllContextSave": 1, "VmResdllContextShutdown": 2,
                     "VmResdllContextShutdownForce": 3, "VmResdllContextLiveMigration": 4}
VM_PROPERTY_NAMES = ("Virtual Machine", "Virtual Machine Configuration")
FORMATS = {"CLUSPROP_FORMAT_DWORD": "dword", "CLUSPROP_FORMAT_LONG": "long", "CLUSPROP_FORMAT_SZ": "sz",
           "CLUSPROP_FORMAT_EXPAND_SZ": "sz", "CLUSPROP_FORMAT_ULARGE_INTEGER": "ularge"}
MAX_PROPERTIES = 64
MAX_NAME = 256
MAX_TEXT = 4096
REJECTED = "rejected"  # how the error of a move begins that the group's own resources refused


def rejected_by_resources(error):
    """Whether a move ended this way because a resource of the group refused it (it stays)."""
    return isinstance(error, str) and error.startswith(REJECTED)

PHASES = ("asking", "queued", "stopping", "starting", "undoing", "returning")
SOURCE_PHASES = ("asking", "queued", "stopping", "returning")  # the phases in which `from` owns it
CANCELLABLE = ("asking", "queued", "stopping")


def flag_problem(flags):
    if not isinstance(flags, int) or isinstance(flags, bool) or flags < 0 or flags > 0xFFFFFFFF:
        return "flags must be a DWORD"
    if flags & FAILBACK:
        return "CLUSAPI_GROUP_MOVE_FAILBACK (0x10) is reserved"
    if flags & ~ALLOWED_FLAGS:
        return f"unknown move flags 0x{flags & ~ALLOWED_FLAGS:X}"
    return None


def _value_problem(name, value):
    if isinstance(value, dict):
        if set(value) != {"format", "value"} or value["format"] not in FORMATS:
            return f"{name!r}: a typed value is {{format: one of {', '.join(FORMATS)}, value}}"
        kind, v = FORMATS[value["format"]], value["value"]
        if kind == "sz":
            return None if isinstance(v, str) and len(v) <= MAX_TEXT and "\0" not in v else f"{name!r}: a string"
        limits = {"dword": (0, 0xFFFFFFFF), "long": (-2**31, 2**31 - 1), "ularge": (0, 2**64 - 1)}[kind]
        if not isinstance(v, int) or isinstance(v, bool) or not limits[0] <= v <= limits[1]:
            return f"{name!r}: {value['format']} takes an integer in [{limits[0]}, {limits[1]}]"
        return None
    if isinstance(value, str):
        return None if len(value) <= MAX_TEXT and "\0" not in value else f"{name!r}: at most {MAX_TEXT} characters, no NUL"
    if isinstance(value, bool) or (isinstance(value, int) and -2**63 <= value < 2**64):
        return None
    if isinstance(value, float) and math.isfinite(value):
        return None
    return f"{name!r}: a value is a string, a number, a boolean or {{format, value}}"


def property_list_problem(properties):
    """Why a move property list is not acceptable, or None. Hostile input: checked whole."""
    if not isinstance(properties, dict):
        return "the property list is a map of property names to values"
    if len(properties) > MAX_PROPERTIES:
        return f"at most {MAX_PROPERTIES} properties"
    for name, value in properties.items():
        if not isinstance(name, str) or not name or len(name) > MAX_NAME or "\0" in name:
            return f"property names are 1 to {MAX_NAME} characters without NUL"
        problem = _value_problem(name, value)
        if problem:
            return problem
        if name in VM_PROPERTY_NAMES and not (isinstance(value, dict) and value["format"] == "CLUSPROP_FORMAT_DWORD"
                                              and value["value"] in VM_RESDLL_CONTEXT.values()):
            return f"{name!r} is a CLUSPROP_FORMAT_DWORD holding a VM_RESDLL_CONTEXT value (0-4)"
    return None


# -- what the shell reads ---------------------------------------------------------------------
def move_properties_for(group, node):
    """The property list the destination starts the group's resources with, else None."""
    m = group.get("move")
    if m is not None and m["phase"] == "starting" and m["to"] == node == group["owner"]:
        return m["properties"]
    return None


def high_priority_on(group, node):
    m = group.get("move")
    return m is not None and m["phase"] == "starting" and m["to"] == node and bool(m["flags"] & HIGH_PRIORITY_START)


def question_for(group, node):
    """(handle, ask number) when this node must ask the group's resources whether they may move."""
    m = group.get("move")
    if m is not None and m["phase"] == "asking" and m["from"] == node == group["owner"]:
        return m["handle"], m["asks"]
    return None


def queued_moves(state):
    """[(group id, handle, queued_at)] of the moves waiting to be asked again."""
    return [(g["id"], g["move"]["handle"], g["move"]["queued_at"]) for g in state["groups"].values()
            if g.get("move") and g["move"]["phase"] == "queued"]


def stale_moves(state):
    """[(group id, handle)] of moves whose group changed owner under them (a failover)."""
    out = []
    for g in state["groups"].values():
        m = g.get("move")
        if m is not None and g["owner"] != (m["from"] if m["phase"] in SOURCE_PHASES else m["to"]):
            out.append((g["id"], m["handle"]))
    return out


# -- preconditions ----------------------------------------------------------------------------
def _needs_move(state, cmd):
    g = find_group(state, cmd["group"]) if isinstance(cmd.get("group"), str) else None
    if g is None:
        return failure("ERROR_GROUP_NOT_FOUND", str(cmd.get("group")))
    if g["special"] and not cmd.get("by_cluster"):  # a drain or failback moves it (mover.py)
        return failure("CLUSTER_SPECIAL_GROUP", g["name"], message="the core group is not moved by clients")
    problem = flag_problem(cmd.get("flags")) or property_list_problem(cmd.get("properties"))
    if problem:
        return failure("ERROR_INVALID_PARAMETER", message=problem)
    if g.get("move"):
        return failure("ERROR_INVALID_STATE", g["name"], message="a move of the group is already in progress")
    to = cmd.get("to")
    if to is None:
        return failure("ERROR_CLUSTER_NODE_DOWN", message="no other node that is up can host the group")
    if not isinstance(to, str) or to not in state["members"]:
        return failure("ERROR_CLUSTER_NODE_NOT_FOUND", str(to))
    if to not in state["view"]["live"]:
        return failure("ERROR_CLUSTER_NODE_DOWN", to, message="the destination node is not Up")
    if node_record(state, to)["paused"]:  # ApiPauseNodeEx: ownership is suspended on a paused node
        return failure("ERROR_CLUSTER_NODE_PAUSED", to, message="the destination node is paused, not Up")
    if to == g["owner"]:
        return failure("ERROR_INVALID_PARAMETER", to, message="the group is already on that node")
    locked = [state["resources"][r]["name"] for r in g["resources"]
              if state["resources"][r]["locked"] and state["resources"][r]["state"] == "Online"]
    if locked and g["persistent_state"] == "online" and not cmd["flags"] & IGNORE_RESOURCE_STATUS:
        return failure("ERROR_CLUSTER_RESOURCE_LOCKED_STATUS", *locked)
    return None


def _needs_the_move(state, cmd):
    """Steps of a move name the group and the move's handle; a step of an old move is refused."""
    g = find_group(state, cmd["group"]) if isinstance(cmd.get("group"), str) else None
    if g is None:
        return failure("ERROR_GROUP_NOT_FOUND", str(cmd.get("group")))
    m = g.get("move")
    if m is None or m["handle"] != cmd.get("handle"):
        return failure("ERROR_INVALID_STATE", g["name"], message="no such move of the group is in progress")
    return None


def _needs_cancel(state, cmd):
    g = find_group(state, cmd["group"]) if isinstance(cmd.get("group"), str) else None
    if g is None:
        return failure("ERROR_GROUP_NOT_FOUND", str(cmd.get("group")))
    m = g.get("move")
    if m is None:
        return failure("ERROR_INVALID_STATE", g["name"], message="no move of the group is in progress")
    if m["phase"] not in CANCELLABLE:
        return failure("ERROR_INVALID_STATE", g["name"], m["phase"],
                       message="the group is already handed over to the destination")
    return None


# -- transitions ------------------------------------------------------------------------------
def end_move(state, g, status, error=None):
    m = g.pop("move")
    op = state["operations"].get(m["handle"])
    if op is not None and op["status"] == "pending":
        op["status"], op["error"] = status, error
    if m["handle"] in g["pending"]:
        g["pending"].remove(m["handle"])
    _refresh(state, g)


def _clear_failures(state, g):
    for rid in g["resources"]:
        state["resources"][rid]["pid"] = None
    clear_failures(state, g)
    g["failover_wanted"] = False


def _reached(state, g):
    """The group is in its persistent state (as far as its resources go) on its owner."""
    wanted = wanted_resources(state, g)
    return all(state["resources"][r]["state"] == ("Online" if r in wanted else "Offline") for r in g["resources"])


def _hand_over(state, g):
    """The source runs nothing of the group any more: the destination owns it now."""
    m = g["move"]
    if node_state(state, m["to"]) == "Down":
        end_move(state, g, "failed", "the destination went down before the hand-over; the group stays on the source")
        return
    if node_state(state, m["to"]) == "Paused":  # ApiPauseNodeEx: a paused node takes no group
        end_move(state, g, "failed", "ERROR_CLUSTER_NODE_PAUSED: the destination was paused before the hand-over; "
                                     "the group stays on the source")
        return
    g["owner"], m["phase"] = m["to"], "starting"
    owner_changed(g, m["to"])  # a recovery domain's backup that takes over becomes primary
    _clear_failures(state, g)
    _refresh(state, g)
    _progress(state, g)


def _progress(state, g):
    """Advance a move after the group's resources changed state (called from reports too)."""
    m = g.get("move")
    if m is None:
        return
    phase, failed = m["phase"], any(state["resources"][r]["state"] == "Failed" for r in g["resources"])
    if phase == "stopping" and g["owner"] == m["from"] and not running(state, g):
        _hand_over(state, g)
    elif phase == "starting" and g["owner"] == m["to"]:
        if failed and m["flags"] & RETURN_TO_SOURCE_NODE_ON_ERROR:
            m["phase"] = "undoing"
            g["failover_wanted"] = False  # back to the source first; the policy only after that
            _progress(state, g)
        elif failed:
            end_move(state, g, "failed", "the group failed on the destination; the failure policy takes over")
        elif _reached(state, g):
            end_move(state, g, "succeeded")
    elif phase == "undoing" and g["owner"] == m["to"] and not running(state, g):
        if m["from"] is None or node_state(state, m["from"]) != "Up":
            g["failover_wanted"] = True
            end_move(state, g, "failed", "the group failed on the destination and the source is "
                                         f"{'down' if m['from'] is None else node_state(state, m['from']).lower()}")
            return
        g["owner"], m["phase"] = m["from"], "returning"
        _clear_failures(state, g)
        _refresh(state, g)
        _progress(state, g)
    elif phase == "returning" and g["owner"] == m["from"]:
        if failed:
            end_move(state, g, "failed", "the group failed on the destination and again on the source; "
                                     "the failure policy takes over")
        elif _reached(state, g):
            end_move(state, g, "failed", "the group failed on the destination; it is back on the source")


REPORT_HOOKS.append(_progress)


def begin(state, g, handle, to, flags, properties, at):
    """Start a move of g to `to` (a client's, a drain's, or a failover's hand-over)."""
    g["move"] = {"handle": handle, "from": g["owner"], "to": to, "flags": flags, "properties": dict(properties),
                 "phase": "asking", "asks": 0, "queued_at": None, "at": at}
    state["operations"][handle] = {"group": g["id"], "resource": None, "target": "move",
                                   "status": "pending", "error": None}
    g["pending"].append(handle)
    if g["owner"] is None or not running(state, g):  # nothing runs: nothing to ask or stop
        g["move"]["phase"] = "stopping"
        _hand_over(state, g)
    elif flags & IGNORE_RESOURCE_STATUS:
        g["move"]["phase"] = "stopping"
    _refresh(state, g)
    return ok({"status": "ERROR_IO_PENDING", "code": 0x3E5, "handle": handle})


@handler("group.move", needs=_needs_move)
def _group_move(state, cmd):
    g = find_group(state, cmd["group"])
    return begin(state, g, cmd["handle"], cmd["to"], cmd["flags"], cmd["properties"], cmd["at"])


@handler("group.move_answer", needs=_needs_the_move)
def _group_move_answer(state, cmd):
    """The source's answer for its resources: ok, not_now or reject (with who said it)."""
    g = find_group(state, cmd["group"])
    m = g["move"]
    if m["phase"] != "asking" or cmd.get("ask") != m["asks"] or cmd.get("node") != m["from"]:
        return failure("ERROR_INVALID_STATE", g["name"], message="not the question this move asked")
    answer, who = cmd.get("answer"), ", ".join(map(str, cmd.get("resources") or []))
    if answer == "ok":
        m["phase"] = "stopping"
        _progress(state, g)
    elif answer == "not_now" and m["flags"] & QUEUE_ENABLED:
        m["phase"], m["queued_at"] = "queued", cmd["at"]
    elif answer == "not_now":
        end_move(state, g, "failed", f"{REJECTED}: a move is not possible now ({who}); "
                                 "CLUSAPI_GROUP_MOVE_QUEUE_ENABLED would queue it")
    elif answer == "reject":
        end_move(state, g, "failed", f"{REJECTED} by a resource of the group ({who}); the group stays on the source")
    else:
        return failure("ERROR_INVALID_PARAMETER", str(answer))
    return ok()


@handler("group.move_retry", needs=_needs_the_move)
def _group_move_retry(state, cmd):
    """The leader asks a queued move's resources again (while the destination is Up: live and
    not paused)."""
    g = find_group(state, cmd["group"])
    m = g["move"]
    if m["phase"] != "queued":
        return failure("ERROR_INVALID_STATE", g["name"], message="the move is not queued")
    if node_state(state, m["to"]) == "Up":
        m["phase"], m["asks"] = "asking", m["asks"] + 1
    else:
        m["queued_at"] = cmd["at"]
    return ok()


@handler("group.cancel_move", needs=_needs_cancel)
def _group_cancel_move(state, cmd):
    g = find_group(state, cmd["group"])
    end_move(state, g, "cancelled", "the move was cancelled")
    return ok()


@handler("group.move_abandon", needs=_needs_the_move)
def _group_move_abandon(state, cmd):
    """The group changed owner under the move (failed over after fencing): the move is over."""
    g = find_group(state, cmd["group"])
    m = g["move"]
    if g["owner"] == (m["from"] if m["phase"] in SOURCE_PHASES else m["to"]):
        return failure("ERROR_INVALID_STATE", g["name"], message="the move is on course")
    end_move(state, g, "failed", f"the group was moved by the failover policy ({cmd.get('reason', '')})")
    return ok()
