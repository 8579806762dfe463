"""Groups and resources (MS-CMRP's model): the pure handlers of the cluster database.

A group is the unit of ownership; its resources run together on its owner. Its persistent
state is what a client last commanded; its state is computed from its resources' states,
which only the owner reports. Every transition of the computed state increments the group's
state sequence number. Dependencies stay inside one group and form a DAG.
"""
from . import policy
from .commands import first, handler, ok, pending
from .errors import failure
from .pause import node_record

CORE_GROUP = "Cluster Group"
GROUP_TYPE_UNKNOWN = 0x270F  # ClusGroupTypeUnknown, MS-CMRP 3.1.4.2.43
MAX_DEPENDENCY_DEPTH = 100  # MS-CMRP 3.1.4.2.20
RESOURCE_STATES = ("Online", "Offline", "Failed", "OnlinePending", "OfflinePending")
RESTART_ACTIONS = ("none", "restart", "restart_failover")
FAILBACK_MODES = ("prevent", "immediate", "window")
OPS_KEEP = 10000
REPORT_HOOKS = []  # fn(state, group) after each resource report (moves.py advances a move with it)
MOVE_AWAY = {"stopping": "from", "undoing": "to"}  # a move's phase -> the owner that stops the group


def valid_name(name):
    """MS-CMRP 3.1.1.1.4: no NUL, at least one character other than space, tab, CR, LF."""
    return isinstance(name, str) and "\0" not in name and name.strip(" \t\r\n") != ""


# Names and ids are looked up case-insensitively through an index kept in the database
# (state["names"][kind]: casefolded name or id -> id), so a lookup costs the same at 10 groups
# and at 10,000.
def _find(state, kind, key):
    table = state["groups" if kind == "group" else "resources"]
    if key in table:
        return table[key]
    oid = state["names"][kind].get(key.casefold())
    return table.get(oid) if oid is not None else None


def find_group(state, key):
    """A group by id or by name, both case-insensitive."""
    return _find(state, "group", key)


def find_resource(state, key):
    return _find(state, "resource", key)


def _index(state, kind, obj):
    names = state["names"][kind]
    names[obj["name"].casefold()] = names[obj["id"].casefold()] = obj["id"]


def _unindex(state, kind, obj):
    names = state["names"][kind]
    for key in (obj["name"].casefold(), obj["id"].casefold()):
        if names.get(key) == obj["id"]:
            del names[key]


def _name_taken(state, name, except_id=None, kind="group"):
    owner = state["names"][kind].get(name.casefold())
    return owner is not None and owner != except_id


def compute_state(state, group):
    """Online, Offline, Failed, PartialOnline or Pending, from the group's resources."""
    states = [state["resources"][r]["state"] for r in group["resources"]]
    if not states:  # an empty group is where a client last put it, once it has an owner
        return "Online" if group["persistent_state"] == "online" and group["owner"] else "Offline"
    if "Failed" in states:
        return "Failed"
    if any(s in ("OnlinePending", "OfflinePending") for s in states):
        return "Pending"
    if all(s == "Online" for s in states):
        return "Online"
    if all(s == "Offline" for s in states):
        return "Offline"
    return "PartialOnline"


def _refresh(state, group):
    """Recompute the group's state; count a transition; settle operations it completes."""
    new = compute_state(state, group)
    if new != group["state"]:
        group["state"] = new
        group["state_sequence"] += 1
    for handle in list(group["pending"]):
        op = state["operations"][handle]
        if op["target"] == "move":
            continue  # a move settles its own operation (moves.py)
        if op.get("resource"):
            _settle_resource_op(state, op)
        elif (op["target"], new) in (("online", "Online"), ("offline", "Offline")):
            op["status"] = "succeeded"
        elif new == "Failed":
            op["status"], op["error"] = "failed", "the group failed"
        elif op["target"] != group["persistent_state"]:
            op["status"], op["error"] = "cancelled", "superseded by a later command"
    group["pending"] = [h for h in group["pending"] if state["operations"][h]["status"] == "pending"]


def _settle_resource_op(state, op):
    r = state["resources"].get(op["resource"])
    if r is None:
        op["status"], op["error"] = "failed", "the resource was deleted"
    elif (op["target"], r["state"]) in (("online", "Online"), ("offline", "Offline")):
        op["status"] = "succeeded"
    elif r["state"] == "Failed":
        op["status"], op["error"] = "failed", "the resource failed"
    elif op["target"] != r["persistent_state"]:
        op["status"], op["error"] = "cancelled", "superseded by a later command"


def clear_failures(state, g):
    """Every Failed resource of the group back to Offline, with no restart counted."""
    for rid in g["resources"]:
        r = state["resources"][rid]
        if r["state"] == "Failed":
            r["state"], r["restarts"] = "Offline", []


def _new_operation(state, handle, group, target, resource=None):
    state["operations"][handle] = {"group": group["id"], "resource": resource, "target": target,
                                   "status": "pending", "error": None}
    group["pending"].append(handle)
    while len(state["operations"]) > OPS_KEEP:  # forget the oldest; a pending one stops being waited on
        old = next(iter(state["operations"]))
        owner = state["groups"].get(state["operations"].pop(old)["group"])
        if owner is not None and old in owner["pending"]:
            owner["pending"].remove(old)
    _refresh(state, group)
    return pending(handle)


def wanted_resources(state, group):
    """The resources of a group that may run: the group online, the resource commanded
    online and not failed, and everything it depends on wanted too."""
    wanted = set()
    if group["persistent_state"] != "online" or moving_away(group):
        return wanted
    for rid in topo_order(state, group):
        r = state["resources"][rid]
        if r["persistent_state"] == "online" and r["state"] != "Failed" and all(d in wanted for d in r["dependencies"]):
            wanted.add(rid)
    return wanted


def moving_away(group):
    """True while the group's owner must stop it for a move (moves.py): the source before
    the hand-over, the destination before a return to the source."""
    m = group.get("move")
    return m is not None and m["phase"] in MOVE_AWAY and group["owner"] == m[MOVE_AWAY[m["phase"]]]


def topo_order(state, group):
    """The group's resources, each after everything it depends on."""
    res = state["resources"]
    order, seen = [], set()

    def visit(rid):
        if rid in seen:
            return
        seen.add(rid)
        for d in res[rid]["dependencies"]:
            visit(d)
        order.append(rid)
    for rid in group["resources"]:
        visit(rid)
    return order


def _longest(start, edges):
    """The number of resources on the longest path from start along edges (memoized)."""
    memo = {}

    def walk(rid):
        if rid not in memo:
            memo[rid] = 1 + max((walk(n) for n in edges(rid)), default=0)
        return memo[rid]
    return walk(start)


def _chain_length(state, rid, depends_on):
    """How long the longest dependency chain through the new edge rid -> depends_on is."""
    res = state["resources"]
    below = _longest(depends_on, lambda x: res[x]["dependencies"])
    above = _longest(rid, lambda x: [o["id"] for o in res.values() if x in o["dependencies"]])
    return above + below


def _providers(state, rid):
    """rid and every resource it depends on, directly or not."""
    stack, seen = [rid], []
    while stack:
        r = stack.pop()
        if r not in seen:
            seen.append(r)
            stack.extend(state["resources"][r]["dependencies"])
    return seen


def _depends_on(state, rid, target):
    """True when rid depends on target, directly or not."""
    stack, seen = [rid], set()
    while stack:
        r = stack.pop()
        if r == target:
            return True
        if r not in seen:
            seen.add(r)
            stack.extend(state["resources"][r]["dependencies"])
    return False


# -- preconditions ----------------------------------------------------------------------------
def _needs_group(state, cmd):
    if find_group(state, cmd["group"]) is None:
        return failure("ERROR_GROUP_NOT_FOUND", cmd["group"])
    return None


def _needs_resource(state, cmd):
    if find_resource(state, cmd["resource"]) is None:
        return failure("ERROR_RESOURCE_NOT_FOUND", cmd["resource"])
    return None


def _not_special(group, what):
    if group["special"]:
        return failure("CLUSTER_SPECIAL_GROUP", group["name"], message=f"the core group cannot be {what}")
    return None


# -- groups -----------------------------------------------------------------------------------
def new_group(gid, name, members, special=False, group_type=GROUP_TYPE_UNKNOWN):
    return {
        "id": gid, "name": name, "persistent_state": "offline", "owner": None, "state": "Offline",
        "state_sequence": 0, "preferred_owners": [], "flags": 0, "group_type": group_type,
        "anti_affinity": [], "special": special, "resources": [], "failures": [], "pending": [],
        "failover": {"threshold": max(len(members) - 1, 0), "period_hours": 6, "failback": "prevent",
                     "failback_window": [0, 0]},
    }


def _needs_new_name(state, cmd):
    if not valid_name(cmd["name"]):
        return failure("ERROR_INVALID_NAME", cmd["name"])
    if _name_taken(state, cmd["name"]) or _name_taken(state, cmd["id"]):
        return failure("ERROR_OBJECT_ALREADY_EXISTS", cmd["name"])
    return None


def _needs_rename(state, cmd):
    g = find_group(state, cmd["group"])
    if g is None:
        return failure("ERROR_GROUP_NOT_FOUND", cmd["group"])
    if not valid_name(cmd["name"]):
        return failure("ERROR_INVALID_NAME", cmd["name"])
    if _name_taken(state, cmd["name"], except_id=g["id"]):
        return failure("ERROR_ALREADY_EXISTS", cmd["name"])
    return None


@handler("group.create", needs=_needs_new_name)
def _group_create(state, cmd):
    group = new_group(cmd["id"], cmd["name"], state["members"], group_type=cmd.get("group_type", GROUP_TYPE_UNKNOWN))
    state["groups"][cmd["id"]] = group
    _index(state, "group", group)
    return ok(cmd["id"])


@handler("group.create_core")
def _group_create_core(state, cmd):
    """The core "Cluster Group", made once by the leader with the cluster."""
    if any(g["special"] for g in state["groups"].values()) or _name_taken(state, CORE_GROUP) \
            or _name_taken(state, cmd["id"]):
        return failure("ERROR_OBJECT_ALREADY_EXISTS", CORE_GROUP)
    if cmd["owner"] not in state["members"]:
        return failure("ERROR_INVALID_PARAMETER", cmd["owner"])
    group = new_group(cmd["id"], CORE_GROUP, state["members"], special=True, group_type=1)  # ClusGroupTypeCoreCluster
    group["persistent_state"], group["owner"], group["state"] = "online", cmd["owner"], "Online"
    state["groups"][cmd["id"]] = group
    _index(state, "group", group)
    return ok(cmd["id"])


def _delete_problem(state, cmd):
    g = find_group(state, cmd["group"])
    if g["special"]:
        return failure("ERROR_CORE_RESOURCE", g["name"], message="the core group cannot be deleted")
    if g["resources"] and not cmd.get("force"):
        return failure("ERROR_DIR_NOT_EMPTY", g["name"])
    return None


@handler("group.delete", needs=first(_needs_group, _delete_problem))
def _group_delete(state, cmd):
    g = find_group(state, cmd["group"])
    for rid in g["resources"]:
        _unindex(state, "resource", state["resources"].pop(rid))
    _unindex(state, "group", state["groups"].pop(g["id"]))
    for handle in g["pending"]:
        state["operations"][handle].update(status="failed", error="the group was deleted")
    return ok()


@handler("group.rename", needs=_needs_rename)
def _group_rename(state, cmd):
    g = find_group(state, cmd["group"])
    _unindex(state, "group", g)
    g["name"] = cmd["name"]
    _index(state, "group", g)
    return ok()


def set_persistent_state(state, group, target):
    """MS-CMRP groups: bringing a group online "consists of bringing all the resources in a group
    to their online state", offline all to their offline state: the group's persistent state
    and every one of its resources'."""
    group["persistent_state"] = target
    for rid in group["resources"]:
        state["resources"][rid]["persistent_state"] = target


def running(state, g):
    """The group's resources that are not Offline or Failed (on its owner)."""
    return [r for r in g["resources"] if state["resources"][r]["state"] not in ("Offline", "Failed")]


def new_owner_wanted(state, g):
    """Whether a command online places the group (its owner comes in the command): it has no
    owner, or it is offline and its owner is paused (ApiPauseNodeEx suspends group ownership
    there: a paused node keeps what it runs, but brings no more groups online)."""
    return g["owner"] is None or g["persistent_state"] != "online" and node_record(state, g["owner"])["paused"]


def _new_owner_problem(state, g, cmd):
    """Why the owner an online command gives the group is refused, or None."""
    if g["owner"] is not None and running(state, g):
        return failure("ERROR_CLUSTER_NODE_PAUSED", g["owner"],
                       message="the group's owner is paused and still stopping it: no other node may start it yet")
    if not cmd.get("owner") or cmd["owner"] not in state["members"]:
        return failure("ERROR_CLUSTER_NODE_DOWN", message="no node can host the group")
    if node_record(state, cmd["owner"])["paused"]:  # paused since placement chose it
        return failure("ERROR_CLUSTER_NODE_PAUSED", cmd["owner"], message="the node chosen to host the group is paused")
    return None


def _state_problem(state, cmd, target):
    g = find_group(state, cmd["group"])
    refused = _not_special(g, f"brought {target}")
    if refused:
        return refused
    if target == "offline" and any(state["resources"][r]["locked"] for r in g["resources"]):
        return failure("ERROR_CLUSTER_RESOURCE_LOCKED_STATUS", g["name"])
    if target == "online" and new_owner_wanted(state, g):
        return _new_owner_problem(state, g, cmd)
    return None


def _command_state(state, cmd, target):
    g = find_group(state, cmd["group"])
    if target == "online" and new_owner_wanted(state, g):
        g["owner"] = cmd["owner"]
    set_persistent_state(state, g, target)
    if target == "online" and g["state"] == "Failed":
        clear_failures(state, g)  # a client's online command clears the failure
    return _new_operation(state, cmd["handle"], g, target)


@handler("group.online", needs=first(_needs_group, lambda state, cmd: _state_problem(state, cmd, "online")))
def _group_online(state, cmd):
    return _command_state(state, cmd, "online")


@handler("group.offline", needs=first(_needs_group, lambda state, cmd: _state_problem(state, cmd, "offline")))
def _group_offline(state, cmd):
    return _command_state(state, cmd, "offline")


# -- values from outside: bounded, finite, well formed ---------------------------------------------
LIMITS = {"threshold": 10000, "period": 30 * 86400.0, "delay": 3600.0, "period_hours": 366 * 24.0,
          "monitor_interval": 3600.0}
INTEGERS = ("threshold",)


def number_problem(key, v):
    """Why v is not a value for `key` (a finite number, an integer where one is counted, at
    most LIMITS[key]), or None. The ranges below the limit are the policies' own checks."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"{key}: a number"
    if key in INTEGERS and not isinstance(v, int):
        return f"{key}: an integer"
    if v != v or v in (float("inf"), float("-inf")) or abs(v) > LIMITS[key]:
        return f"{key}: a finite number of at most {LIMITS[key]:g}"
    return None


def window_problem(window):
    if not (isinstance(window, (list, tuple)) and len(window) == 2
            and all(isinstance(h, int) and not isinstance(h, bool) for h in window)):
        return "failback_window: [start hour, end hour], two integers"
    return None


def failover_value_problem(policy):
    """The failover policy's values that no range check could take (INVALID_VALUE), or None."""
    return next(filter(None, [number_problem(k, policy[k]) for k in ("threshold", "period_hours") if k in policy]
                       + [window_problem(policy["failback_window"]) if "failback_window" in policy else None]), None)


def restart_value_problem(restart, interval=None):
    found = [number_problem(k, restart[k]) for k in ("threshold", "period", "delay") if k in restart]
    if interval is not None:
        found.append(number_problem("monitor_interval", interval))
    return next(filter(None, found), None)


SETTABLE = ("preferred_owners", "flags", "anti_affinity", "failover")


def _group_set_problem(state, cmd):
    """Every refusal of group.set, so that a refused one takes no log entry (Node.write's precheck)."""
    g, field, value = find_group(state, cmd["group"]), cmd.get("field"), cmd.get("value")
    if field not in SETTABLE:
        return failure("ERROR_INVALID_PARAMETER", field)
    if field == "preferred_owners":
        unknown = [n for n in value if n not in state["members"]]
        return _not_special(g, "given a node list") or (
            failure("ERROR_INVALID_PARAMETER", *unknown, message="preferred owners are distinct configured nodes")
            if unknown or len(set(value)) != len(value) else None)
    if field == "failover":
        problem = failover_value_problem(value) if isinstance(value, dict) else "the failover policy is a map"
        if problem:
            return failure("INVALID_VALUE", "failover", message=problem)
        merged = {**g["failover"], **value}
        if (set(merged) != set(g["failover"]) or merged["failback"] not in FAILBACK_MODES or merged["threshold"] < 0
                or merged["period_hours"] <= 0 or not all(0 <= h <= 23 for h in merged["failback_window"])):
            return failure("ERROR_INVALID_PARAMETER",
                           message="threshold >= 0, period > 0, failback prevent|immediate|window, window hours 0-23")
    return None


@handler("group.set", needs=first(_needs_group, _group_set_problem))
def _group_set(state, cmd):
    """Set preferred owners, flags, anti-affinity class names or failover policy."""
    g = find_group(state, cmd["group"])
    field, value = cmd["field"], cmd["value"]
    if field == "preferred_owners":
        g["preferred_owners"] = list(value)
    elif field == "failover":
        g["failover"] = {**g["failover"], **value}
    else:
        g[field] = value
    return ok()


# -- resources --------------------------------------------------------------------------------
DEFAULT_RESTART = {"threshold": 3, "period": 900.0, "delay": 0.5, "action": "restart_failover"}


def _new_resource_problem(state, cmd):
    if not valid_name(cmd["name"]):
        return failure("ERROR_INVALID_NAME", cmd["name"])
    if _name_taken(state, cmd["name"], kind="resource") or _name_taken(state, cmd["id"], kind="resource"):
        return failure("ERROR_OBJECT_ALREADY_EXISTS", cmd["name"])
    return None


@handler("resource.create", needs=first(_needs_group, _new_resource_problem))
def _resource_create(state, cmd):
    g = find_group(state, cmd["group"])
    state["resources"][cmd["id"]] = {
        "id": cmd["id"], "name": cmd["name"], "group": g["id"], "type": cmd["type"],
        "properties": dict(cmd["properties"]), "dependencies": [], "restart": dict(DEFAULT_RESTART),
        "monitor_interval": float(cmd.get("monitor_interval", 1.0)), "state": "Offline",
        "persistent_state": "online",  # a resource follows its group unless commanded offline
        "locked": False, "pid": None, "detail": "", "restarts": [],
    }
    g["resources"].append(cmd["id"])
    _index(state, "resource", state["resources"][cmd["id"]])
    _refresh(state, g)
    return ok(cmd["id"])


def _deletable(state, cmd):
    r = find_resource(state, cmd["resource"])
    if r["state"] not in ("Offline", "Failed"):
        return failure("ERROR_RESOURCE_ONLINE", r["name"])
    dependents = [o["name"] for o in state["resources"].values() if r["id"] in o["dependencies"]]
    return failure("ERROR_DEPENDENT_RESOURCE_EXISTS", *dependents) if dependents else None


@handler("resource.delete", needs=first(_needs_resource, _deletable))
def _resource_delete(state, cmd):
    r = find_resource(state, cmd["resource"])
    g = state["groups"][r["group"]]
    g["resources"].remove(r["id"])
    _unindex(state, "resource", state["resources"].pop(r["id"]))
    _refresh(state, g)
    return ok()


def _needs_resource_set(state, cmd):
    refused = _needs_resource(state, cmd)
    restart = cmd.get("restart") or {}
    if refused is None:
        problem = restart_value_problem(restart, cmd.get("monitor_interval")) if isinstance(restart, dict) \
            else "the restart policy is a map"
        refused = problem and failure("INVALID_VALUE", "restart", message=problem)
    if refused is None:
        r = find_resource(state, cmd["resource"])
        restart = {**r["restart"], **restart}
        if (set(restart) != set(DEFAULT_RESTART) or restart["action"] not in RESTART_ACTIONS
                or not _number(restart["threshold"], 0) or not _number(restart["period"], 1e-9)
                or not _number(restart["delay"], 0)):
            return failure("ERROR_INVALID_PARAMETER",
                           message="restart: threshold >= 0, period > 0, delay >= 0, action none|restart|restart_failover")
        interval = cmd.get("monitor_interval")
        if interval is not None and not (_number(interval, 0.1) and interval <= 3600):
            return failure("ERROR_INVALID_PARAMETER", "monitor_interval", message="0.1 to 3600 seconds")
    return refused


@handler("resource.set", needs=_needs_resource_set)
def _resource_set(state, cmd):
    r = find_resource(state, cmd["resource"])
    restart = {**r["restart"], **(cmd.get("restart") or {})}
    interval = cmd.get("monitor_interval")
    if cmd.get("properties") is not None:
        r["properties"] = dict(cmd["properties"])
    r["restart"] = restart
    if interval is not None:
        r["monitor_interval"] = float(interval)
    return ok()


def _number(v, minimum):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= minimum


def _dependency_problem(state, cmd):
    r = find_resource(state, cmd["resource"])
    d = find_resource(state, cmd["depends_on"])
    if d is None:
        return failure("ERROR_RESOURCE_NOT_FOUND", cmd["depends_on"])
    if d["id"] == r["id"] or d["group"] != r["group"]:
        return failure("ERROR_INVALID_PARAMETER", r["name"], d["name"],
                       message="a resource depends only on another resource of its own group")
    if d["id"] in r["dependencies"]:
        return failure("ERROR_DEPENDENCY_ALREADY_EXISTS", r["name"], d["name"])
    if _depends_on(state, d["id"], r["id"]):
        return failure("ERROR_CIRCULAR_DEPENDENCY", r["name"], d["name"])
    if _chain_length(state, r["id"], d["id"]) > MAX_DEPENDENCY_DEPTH:
        return failure("ERROR_DEPENDENCY_TREE_TOO_COMPLEX", r["name"])
    return None


@handler("resource.add_dependency", needs=first(_needs_resource, _dependency_problem))
def _add_dependency(state, cmd):
    find_resource(state, cmd["resource"])["dependencies"].append(find_resource(state, cmd["depends_on"])["id"])
    return ok()


def _no_such_dependency(state, cmd):
    r, d = find_resource(state, cmd["resource"]), find_resource(state, cmd["depends_on"])
    if d is None or d["id"] not in r["dependencies"]:
        return failure("ERROR_DEPENDENCY_NOT_FOUND", r["name"], cmd["depends_on"])
    return None


@handler("resource.remove_dependency", needs=first(_needs_resource, _no_such_dependency))
def _remove_dependency(state, cmd):
    find_resource(state, cmd["resource"])["dependencies"].remove(find_resource(state, cmd["depends_on"])["id"])
    return ok()


def _move_problem(state, cmd):
    r = find_resource(state, cmd["resource"])
    if find_group(state, cmd["to"]) is None:
        return failure("ERROR_GROUP_NOT_FOUND", cmd["to"])
    linked = r["dependencies"] or any(r["id"] in o["dependencies"] for o in state["resources"].values())
    if linked:
        return failure("ERROR_DEPENDENCY_NOT_ALLOWED", r["name"], message="remove its dependencies first")
    if r["state"] not in ("Offline", "Failed"):
        return failure("ERROR_RESOURCE_ONLINE", r["name"])
    return None


@handler("resource.move_to_group", needs=first(_needs_resource, _move_problem))
def _move_to_group(state, cmd):
    r = find_resource(state, cmd["resource"])
    g = find_group(state, cmd["to"])
    old = state["groups"][r["group"]]
    old["resources"].remove(r["id"])
    g["resources"].append(r["id"])
    r["group"] = g["id"]
    _refresh(state, old)
    _refresh(state, g)
    return ok()


def _resource_command(state, cmd, target):
    r = find_resource(state, cmd["resource"])
    g = state["groups"][r["group"]]
    refused = _not_special(g, f"brought {target}")
    if refused:
        return refused
    if target == "offline" and r["locked"]:
        return failure("ERROR_CLUSTER_RESOURCE_LOCKED_STATUS", r["name"])
    needs_owner = target == "online" and g["persistent_state"] != "online" and new_owner_wanted(state, g)
    refused = _new_owner_problem(state, g, cmd) if needs_owner else None
    if refused:
        return refused
    r["persistent_state"] = target
    if target == "online":
        # ApiOnlineResource: "the server MUST first bring online the resources that this resource
        # depends on"; its providers' persistent state goes online with it
        for rid in _providers(state, r["id"]):
            p = state["resources"][rid]
            p["persistent_state"] = "online"
            if p["state"] == "Failed":
                p["state"], p["restarts"] = "Offline", []
        if needs_owner:
            g["owner"] = cmd["owner"]
        g["persistent_state"] = "online"  # bringing a resource online brings its group online
    return _new_operation(state, cmd["handle"], g, target, resource=r["id"])


@handler("resource.online", needs=_needs_resource)
def _resource_online(state, cmd):
    return _resource_command(state, cmd, "online")


@handler("resource.offline", needs=_needs_resource)
def _resource_offline(state, cmd):
    return _resource_command(state, cmd, "offline")


@handler("resource.report", needs=_needs_resource)
def _resource_report(state, cmd):
    """The owner's executor reports what a resource is doing. A report from a node that is
    not the group's owner (a stale one, after a move) is refused and changes nothing."""
    r = find_resource(state, cmd["resource"])
    g = state["groups"][r["group"]]
    if cmd["node"] != g["owner"]:
        return failure("ERROR_HOST_NODE_NOT_GROUP_OWNER", cmd["node"], g["owner"] or "")
    if cmd["state"] not in RESOURCE_STATES:
        return failure("ERROR_INVALID_PARAMETER", cmd["state"])
    r["state"], r["pid"], r["locked"], r["detail"] = cmd["state"], cmd.get("pid"), bool(cmd.get("locked")), cmd.get("detail", "")
    r["pid_create_time"] = cmd.get("pid_create_time")  # with the pid: what a process fence may kill
    if cmd.get("restarted"):
        r["restarts"] = policy.recent_restarts(r, cmd["at"]) + [cmd["at"]]
    if cmd["state"] == "Failed" and r["restart"]["action"] == "restart_failover":
        if not policy.failovers_exhausted(g, cmd["at"]):
            g["failover_wanted"] = True  # restarts exhausted here: the coordinator moves the group
    _refresh(state, g)
    for hook in REPORT_HOOKS:
        hook(state, g)
    return ok()
