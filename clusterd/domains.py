"""Recovery domains (IBM i cluster resource groups): the pure handlers.

A group may have a recovery domain: its nodes in order with their roles. Primary-backup model:
one primary, backups 1..n in order, replicates; peer model: peers and replicates. Failover and
switchover follow that order (placement.py). The group reports a CRG status with IBM's codes.

Operations on the domain are asynchronous (QcstRemoveNodeFromRcvyDomain's model): the request
is validated and recorded (status -> the operation's pending code) and returns a request handle
at once. Each active node of the domain (live in the committed view) runs the group's exit
program itself when the committed request asks (exitprog.py) and commits its result here; the
last result advances the request: all succeeded -> the change applies (for a switchover, the
leader first moves the group, mover.py); one failed -> every active node is called with Undo;
Undo succeeded -> the status comes back, the request failed; Undo failed -> Indoubt (30). The
completion goes to the results queue the caller named, keyed by the request handle (events.py).

IBM numbers, all confirmed: the action codes (enum
QcstCrgActionCode) and the CRG statuses (enum QcstCrgStatus) from IBM's QSYSINC headers
QCSTCRG3.H and QCST.H, with IBM's names; the role numbers from QCST.H (primary 0, replicate
-1, peer -4; backups 1..n in order). A failover gives the node the group leaves, when it is
still active and takes part, End Node (16) and the others Failover (9), as IBM's ENDCLUNOD
does (action_for).
"""
from . import events
from .commands import handler, ok, pending
from .errors import failure
from .groups import _refresh, clear_failures, find_group, set_persistent_state
from .pause import paused_nodes

# CRG status codes (QCST.H enum QcstCrgStatus)
ACTIVE, INACTIVE, INDOUBT, RESTORED = 10, 20, 30, 40
ADD_NODE_PENDING, CHANGE_PENDING, END_CRG_PENDING, REMOVE_NODE_PENDING, START_CRG_PENDING, SWITCHOVER_PENDING = \
    500, 520, 530, 550, 560, 570
STATUS_NAMES = {ACTIVE: "Active", INACTIVE: "Inactive", INDOUBT: "Indoubt", RESTORED: "Restored",
                ADD_NODE_PENDING: "Add Node Pending", CHANGE_PENDING: "Change Pending",
                END_CRG_PENDING: "End CRG Pending", START_CRG_PENDING: "Start CRG Pending",
                REMOVE_NODE_PENDING: "Remove Node Pending", SWITCHOVER_PENDING: "Switchover Pending"}
# role numbers (QCST.H): QcstPrimaryNodeRole 0, QcstReplicateNodeRole -1, QcstPeerNodeRole -4
PRIMARY_ROLE, REPLICATE_ROLE, PEER_ROLE = 0, -1, -4
# exit program action codes (QCSTCRG3.H enum QcstCrgActionCode)
START, END, RESTART, FAILOVER, SWITCHOVER, ADD_NODE, REMOVE_NODE, CHANGE, UNDO, END_NODE = 2, 4, 3, 9, 10, 11, 12, 13, 15, 16
ACTION_NAMES = {START: "Start", END: "End", RESTART: "Restart", FAILOVER: "Failover", SWITCHOVER: "Switchover",
                ADD_NODE: "Add Node", REMOVE_NODE: "Remove Node", CHANGE: "Change", UNDO: "Undo", END_NODE: "End Node"}

MODELS = {"primary-backup": ("primary", "backup", "replicate"), "peer": ("peer", "replicate")}
KINDS = {"add_node": (ADD_NODE_PENDING, ADD_NODE), "remove_node": (REMOVE_NODE_PENDING, REMOVE_NODE),
         "set_role": (CHANGE_PENDING, CHANGE), "switchover": (SWITCHOVER_PENDING, SWITCHOVER),
         "failover": (SWITCHOVER_PENDING, FAILOVER),
         "start": (START_CRG_PENDING, START), "end": (END_CRG_PENDING, END)}  # QcstStart/EndClusterResourceGroup  # failover: the coordinator's, after a fence
FAILOVER_QUEUE = "clusterd-failover"  # where failover completions go (IBM: the failover message queue)
MAX_PATH = 4096
MAX_DOMAIN = 64
REQUESTS_KEEP = 10000


# -- reading a domain -------------------------------------------------------------------------
def roles(domain, role):
    return [e["node"] for e in domain["nodes"] if e["role"] == role]


ROLE_NUMBERS = {"primary": PRIMARY_ROLE, "replicate": REPLICATE_ROLE, "peer": PEER_ROLE}


def role_of(domain, node):
    """The node's role name and IBM's role number (primary 0, backup n, replicate -1, peer -4)."""
    backups = roles(domain, "backup")
    for e in domain["nodes"]:
        if e["node"] == node:
            number = ROLE_NUMBERS.get(e["role"], backups.index(node) + 1 if node in backups else 0)
            return e["role"], number
    return None, None


def action_for(req, node):
    """The action code a request's exit program gets on `node`: the request's, except that in a
    failover the node the group leaves (still active, so it takes part) gets End Node (16), as
    the node ENDCLUNOD ends does while the others get Failover (9)."""
    if req["kind"] == "failover" and req["phase"] == "exit" and node == req.get("from"):
        return END_NODE
    return req["action"]


def order(domain):
    """The nodes that may own the group, in the order failover and switchover follow."""
    if domain["model"] == "peer":
        return roles(domain, "peer")
    return roles(domain, "primary") + roles(domain, "backup")


def crg_status(group):
    d = group.get("domain")
    if d is None:
        return None
    if d["status"] is not None:
        return d["status"]
    return ACTIVE if group["persistent_state"] == "online" else INACTIVE


def active_nodes(state, domain):
    live = set(state["view"]["live"])
    return [e["node"] for e in domain["nodes"] if e["node"] in live]


def _normalize(entries):
    """primary first, then backups in the order given, then peers, then replicates."""
    rank = {"primary": 0, "backup": 1, "peer": 1, "replicate": 2}
    return sorted(entries, key=lambda e: rank[e["role"]])


def owner_changed(group, new_owner):
    """After a failover or switchover to a backup: it becomes primary, the old primary the
    last backup (IBM's rotation)."""
    d = group.get("domain")
    if d is None or d["model"] != "primary-backup" or new_owner not in roles(d, "backup"):
        return
    old = roles(d, "primary")
    rest = [e for e in d["nodes"] if e["node"] != new_owner and e["role"] != "primary"]
    backups = [e for e in rest if e["role"] == "backup"] + [{"node": n, "role": "backup"} for n in old]
    d["nodes"] = [{"node": new_owner, "role": "primary"}] + backups + [e for e in rest if e["role"] == "replicate"]


# -- creating and deleting a domain -----------------------------------------------------------
def _check_entries(state, model, entries):
    if model not in MODELS:
        return failure("ERROR_INVALID_PARAMETER", "model", message="model is primary-backup or peer")
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_DOMAIN:
        return failure("ERROR_INVALID_PARAMETER", "nodes", message=f"1 to {MAX_DOMAIN} nodes")
    names = [e.get("node") if isinstance(e, dict) else None for e in entries]
    unknown = [str(n) for n in names if n not in state["members"]]
    if unknown or len(set(names)) != len(names):
        return failure("ERROR_INVALID_HANDLE", *unknown, message="the domain's nodes are distinct members")
    bad = [e.get("role") for e in entries if e.get("role") not in MODELS[model]]
    if bad:
        return failure("ERROR_INVALID_PARAMETER", *map(str, bad), message=f"roles of {model}: {', '.join(MODELS[model])}")
    kinds = [e["role"] for e in entries]
    if model == "primary-backup" and kinds.count("primary") != 1:
        return failure("ERROR_INVALID_PARAMETER", "primary", message="a primary-backup domain has one primary")
    if model == "peer" and "peer" not in kinds:
        return failure("ERROR_INVALID_PARAMETER", "peer", message="a peer domain has a peer")
    return None


def _check_program(path):
    if path is not None and not (isinstance(path, str) and path.startswith("/") and len(path) <= MAX_PATH
                                 and "\0" not in path):
        return failure("ERROR_INVALID_PARAMETER", "exit_program", message="an absolute path, or none")
    return None


def _needs_domain_group(state, cmd):
    g = find_group(state, cmd["group"]) if isinstance(cmd.get("group"), str) else None
    if g is None:
        return failure("ERROR_GROUP_NOT_FOUND", str(cmd.get("group")))
    if g["special"]:
        return failure("CLUSTER_SPECIAL_GROUP", g["name"], message="the core group has no recovery domain")
    return None


def _busy(g):
    d = g.get("domain")
    if d is not None and d.get("request"):
        return failure("DOMAIN_REQUEST_IN_PROGRESS", g["name"], d["request"])
    return None


def _needs_create(state, cmd):
    refused = _needs_domain_group(state, cmd)
    if refused:
        return refused
    g = find_group(state, cmd["group"])
    return _busy(g) or _check_entries(state, cmd.get("model"), cmd.get("nodes")) or _check_program(cmd.get("exit_program"))


@handler("domain.create", needs=_needs_create)
def _domain_create(state, cmd):
    """Give the group a recovery domain (or replace its domain: a new one starts clean)."""
    g = find_group(state, cmd["group"])
    g["domain"] = {"model": cmd["model"], "nodes": _normalize([{"node": e["node"], "role": e["role"]} for e in cmd["nodes"]]),
                   "exit_program": cmd.get("exit_program"), "status": None, "request": None}
    return ok()


def _needs_delete(state, cmd):
    refused = _needs_domain_group(state, cmd)
    if refused:
        return refused
    g = find_group(state, cmd["group"])
    if g.get("domain") is None:
        return failure("DOMAIN_NOT_FOUND", g["name"])
    return _busy(g)


@handler("domain.delete", needs=_needs_delete)
def _domain_delete(state, cmd):
    find_group(state, cmd["group"])["domain"] = None
    return ok()


# -- asynchronous requests --------------------------------------------------------------------
def _rules(state, g, cmd):
    """Every rule of the request's page; a failure, or None. Pure and without side effects."""
    d = g["domain"]
    kind, node = cmd["kind"], cmd.get("node")
    live = set(state["view"]["live"])
    in_domain = [e["node"] for e in d["nodes"]]
    if kind in ("add_node", "remove_node", "set_role") and node not in state["members"]:
        return failure("ERROR_INVALID_HANDLE", str(node))
    if kind == "add_node":
        if node in in_domain:
            return failure("ERROR_INVALID_PARAMETER", node, message="the node is already in the recovery domain")
        if cmd.get("role") not in MODELS[d["model"]] or cmd["role"] == "primary":
            return failure("ERROR_INVALID_PARAMETER", str(cmd.get("role")),
                           message=f"a node is added as {' or '.join(r for r in MODELS[d['model']] if r != 'primary')}")
        if len(in_domain) >= MAX_DOMAIN:
            return failure("ERROR_INVALID_PARAMETER", node, message=f"at most {MAX_DOMAIN} nodes")
        return _check_position(cmd, len(roles(d, cmd["role"])) + 1)
    if kind in ("remove_node", "set_role") and node not in in_domain:
        return failure("ERROR_INVALID_HANDLE", node, message="the node is not in the recovery domain")
    status = crg_status(g)
    if kind == "remove_node":
        after = [n for n in in_domain if n != node]
        if d["model"] == "primary-backup" and node in roles(d, "primary"):
            if status == ACTIVE:
                return failure("DOMAIN_RULE", node, message="the primary cannot be removed while the group is Active (10)")
            if not roles(d, "backup"):
                return failure("DOMAIN_RULE", node, message="the primary cannot be removed: no backup in the recovery domain")
            if roles(d, "backup")[0] not in live:
                return failure("DOMAIN_RULE", node, message="the new primary (the first backup) must be active")
        if d["model"] == "peer" and roles(d, "peer") == [node] and status == ACTIVE:
            return failure("DOMAIN_RULE", node, message="the last peer cannot be removed while the group is Active (10)")
        if not any(n in live for n in after):
            return failure("DOMAIN_RULE", node, message="at least one active node must remain in the recovery domain")
        return None
    if kind == "set_role":
        role = cmd.get("role")
        if role not in MODELS[d["model"]] or role == "primary":
            return failure("ERROR_INVALID_PARAMETER", str(role), message="use switchover to change the primary")
        if node in roles(d, "primary"):
            return failure("DOMAIN_RULE", node, message="the primary's role changes by switchover")
        if d["model"] == "peer" and roles(d, "peer") == [node] and role != "peer" and status == ACTIVE:
            return failure("DOMAIN_RULE", node, message="the last peer of an Active group stays a peer")
        return _check_position(cmd, len([n for n in roles(d, role) if n != node]) + 1)
    if kind == "start":
        if status not in (INACTIVE, INDOUBT):
            return failure("DOMAIN_RULE", g["name"], message="start needs the group Inactive (20) or Indoubt (30)")
        if start_target(state, g) is None:
            return _none_up(state, order(d), g, "no node of the domain's order is Up")
        return None
    if kind == "end":
        if status != ACTIVE:
            return failure("DOMAIN_RULE", g["name"], message="end needs the group Active (10)")
        return None
    if kind == "failover":
        if node not in state["members"] or cmd.get("from") not in state["members"]:
            return failure("ERROR_INVALID_HANDLE", str(node))
        if node in paused_nodes(state):  # paused since placement chose it
            return failure("ERROR_CLUSTER_NODE_PAUSED", node, message="the failover's destination is paused")
        return None
    if kind == "switchover":
        if d["model"] != "primary-backup":
            return failure("DOMAIN_RULE", g["name"], message="switchover applies to the primary-backup model")
        if status != ACTIVE:
            return failure("DOMAIN_RULE", g["name"], message="switchover needs the group Active (10)")
        if switchover_target(state, g) is None:
            return _none_up(state, roles(d, "backup"), g, "no active backup that is not paused")
        return None
    return failure("ERROR_INVALID_PARAMETER", str(kind))


def _check_position(cmd, last):
    pos = cmd.get("position")
    if pos is None:
        return None
    if not isinstance(pos, int) or isinstance(pos, bool) or not 1 <= pos <= last:
        return failure("ERROR_INVALID_PARAMETER", "position", message=f"position 1 to {last}")
    return None


def failover_domain(state, gid):
    """How the coordinator fails a group over: "plain" (no domain or no exit program), "exit"
    (through a failover request: exit programs first), "busy" (a request is in progress)."""
    g = state["groups"].get(gid)
    d = g.get("domain") if g else None
    if d is None or not d["exit_program"]:
        return "plain"
    return "busy" if d["request"] else "exit"


def _first_up(state, nodes):
    """The first of `nodes` that is Up: live in the committed view and not paused."""
    live, paused = set(state["view"]["live"]), paused_nodes(state)
    return next((n for n in nodes if n in live and n not in paused), None)


def _none_up(state, nodes, g, why):
    """The refusal when none of `nodes` is Up: ERROR_CLUSTER_NODE_PAUSED when some are live but
    paused (a paused node takes no group, ApiPauseNodeEx), else ERROR_CLUSTER_NODE_DOWN."""
    paused = [n for n in nodes if n in state["view"]["live"] and n in paused_nodes(state)]
    if paused:
        return failure("ERROR_CLUSTER_NODE_PAUSED", *paused, message=why)
    return failure("ERROR_CLUSTER_NODE_DOWN", g["name"], message=why)


def start_target(state, g):
    """Where a start brings the group online: the first node of the order that is Up."""
    return _first_up(state, order(g["domain"]))


def switchover_target(state, g):
    """The first backup that is active (live) and not paused."""
    return _first_up(state, roles(g["domain"], "backup"))


def _needs_request(state, cmd):
    refused = _needs_domain_group(state, cmd)
    if refused:
        return refused
    g = find_group(state, cmd["group"])
    if g.get("domain") is None:
        return failure("DOMAIN_NOT_FOUND", g["name"])
    if cmd.get("kind") not in KINDS:
        return failure("ERROR_INVALID_PARAMETER", "kind")
    if not events.valid_queue(cmd.get("queue")):
        return failure("ERROR_INVALID_PARAMETER", "queue", message=f"a queue name is 1-{events.MAX_QUEUE_NAME} printable characters")
    if cmd["handle"] in state["domain_requests"]:
        return failure("ERROR_OBJECT_ALREADY_EXISTS", cmd["handle"])
    return _busy(g) or _rules(state, g, cmd)


@handler("domain.request", needs=_needs_request)
def _domain_request(state, cmd):
    g = find_group(state, cmd["group"])
    d = g["domain"]
    pending_status, action = KINDS[cmd["kind"]]
    participants = active_nodes(state, d)
    if cmd["kind"] == "add_node" and cmd["node"] in state["view"]["live"]:
        participants.append(cmd["node"])
    roles_at_call = {n: list(role_of(d, n)) for n in participants}
    if cmd["kind"] == "add_node" and cmd["node"] in participants:
        number = ROLE_NUMBERS[cmd["role"]] if cmd["role"] in ROLE_NUMBERS else \
            cmd.get("position") or len(roles(d, "backup")) + 1
        roles_at_call[cmd["node"]] = [cmd["role"], number]
    req = {"handle": cmd["handle"], "group": g["id"], "group_name": g["name"], "kind": cmd["kind"],
           "node": cmd.get("node"), "role": cmd.get("role"), "position": cmd.get("position"), "queue": cmd["queue"],
           "action": action, "phase": "exit", "participants": participants, "roles": roles_at_call,
           "results": {}, "previous_status": d["status"], "status": "pending", "at": cmd["at"],
           "target": switchover_target(state, g) if cmd["kind"] == "switchover" else
           cmd["node"] if cmd["kind"] == "failover" else start_target(state, g) if cmd["kind"] == "start" else None, "from": cmd.get("from"), "reason": cmd.get("reason"),
           "error": None, "exit_program": d["exit_program"]}
    requests = state["domain_requests"]
    requests[cmd["handle"]] = req
    while len(requests) > REQUESTS_KEEP:
        del requests[next(iter(requests))]
    d["status"], d["request"] = pending_status, cmd["handle"]
    if not d["exit_program"] or not participants:
        _advance(state, req, cmd["at"])
    return pending(cmd["handle"])


def _needs_open_request(state, cmd):
    req = state["domain_requests"].get(cmd.get("handle")) if isinstance(cmd.get("handle"), str) else None
    if req is None or req["status"] != "pending":
        return failure("OPERATION_NOT_FOUND", str(cmd.get("handle")))
    return None


def _needs_due_result(state, cmd):
    refused = _needs_open_request(state, cmd)
    if refused:
        return refused
    req = state["domain_requests"][cmd["handle"]]
    if req["phase"] != cmd.get("phase") or cmd.get("node") not in req["participants"] or cmd["node"] in req["results"]:
        return failure("ERROR_INVALID_PARAMETER", str(cmd.get("node")), message="no exit program call of that node is due")
    return None


@handler("domain.exit_result", needs=_needs_due_result)
def _exit_result(state, cmd):
    """One node's exit program ended (or the leader says the node is no longer active)."""
    req = state["domain_requests"][cmd["handle"]]
    req["results"][cmd["node"]] = {"ok": bool(cmd["ok"]), "detail": str(cmd.get("detail", ""))[:1000]}
    if len(req["results"]) == len(req["participants"]):
        _advance(state, req, cmd["at"])
    return ok()


def _needs_moving_request(state, cmd):
    refused = _needs_open_request(state, cmd)
    if refused:
        return refused
    if state["domain_requests"][cmd["handle"]]["phase"] != "move":
        return failure("ERROR_INVALID_PARAMETER", cmd["handle"], message="the request is not moving its group")
    return None


@handler("domain.moved", needs=_needs_moving_request)
def _domain_moved(state, cmd):
    """The leader moved (or failed to move) the group for a switchover."""
    req = state["domain_requests"][cmd["handle"]]
    if cmd["ok"]:
        _complete(state, req, cmd["at"], ok_=True)
    else:
        req["error"] = {"message_id": "MOVE_FAILED", "data": str(cmd.get("detail", ""))[:1000]}
        _start_undo(state, req, cmd["at"])
    return ok()


def _advance(state, req, at):
    failed = {n: r for n, r in req["results"].items() if not r["ok"]}
    if req["phase"] == "exit":
        if failed:
            req["error"] = {"message_id": "EXIT_PROGRAM_FAILED",
                            "data": "; ".join(f"{n}: {r['detail']}" for n, r in sorted(failed.items()))}
            return _start_undo(state, req, at)
        if req["kind"] in ("switchover", "failover"):
            req["phase"] = "move"  # the leader moves (or fails over) the group (mover.py), then domain.moved
            return None
        if req["kind"] == "start" and not _start_placed(state, req):
            return _start_undo(state, req, at)
        return _complete(state, req, at, ok_=True)
    if req["phase"] == "undo":
        return _complete(state, req, at, ok_=False, indoubt=bool(failed))
    return None


def _start_placed(state, req):
    """A start places its group on the target it chose when it was asked; if that node is no
    longer Up (paused or down while the exit programs ran), on the first node of the order that
    is Up now; with none, the start fails (MOVE_FAILED) and undoes."""
    g = state["groups"].get(req["group"])
    if g is None or g.get("domain") is None or _first_up(state, [req["target"]]):
        return True
    req["target"] = start_target(state, g)
    if req["target"] is None:
        req["error"] = {"message_id": "MOVE_FAILED", "data": "no node of the domain's order is Up any more"}
        return False
    return True


def _start_undo(state, req, at):
    req["phase"], req["action"], req["results"] = "undo", UNDO, {}
    live = set(state["view"]["live"])
    req["participants"] = [n for n in req["participants"] if n in live]
    if not req["exit_program"] or not req["participants"]:
        _complete(state, req, at, ok_=False)


def _complete(state, req, at, ok_, indoubt=False):
    g = state["groups"].get(req["group"])
    if g is not None and g.get("domain") is not None:
        d = g["domain"]
        if ok_:
            _apply_change(state, g, req)
        d["status"] = INDOUBT if indoubt else None if ok_ and req["kind"] in ("start", "end") else req["previous_status"]
        d["request"] = None
    elif ok_:
        ok_, req["error"] = False, {"message_id": "DOMAIN_NOT_FOUND", "data": "the group or its domain was deleted"}
    req["status"], req["phase"], req["ended_at"] = ("succeeded" if ok_ else "failed"), "done", at
    entry = {"handle": req["handle"], "group": req["group_name"], "kind": req["kind"], "ok": ok_, "at": at}
    if not ok_:
        entry.update(req["error"] or {"message_id": "REQUEST_FAILED", "data": ""})
        entry["status"] = crg_status(g) if g is not None else None
    events.post(state, req["queue"], req["handle"], entry)


def _apply_change(state, g, req):
    d, node = g["domain"], req["node"]
    if req["kind"] == "add_node":
        _insert(d, node, req["role"], req["position"])
    elif req["kind"] == "remove_node":
        was_primary = node in roles(d, "primary")
        d["nodes"] = [e for e in d["nodes"] if e["node"] != node]
        if was_primary:  # the first backup becomes primary and owns the (inactive) group
            new = roles(d, "backup")[0]
            for e in d["nodes"]:
                if e["node"] == new:
                    e["role"] = "primary"
            d["nodes"] = _normalize(d["nodes"])
            if g["owner"] == node or g["owner"] is None:
                g["owner"] = new
    elif req["kind"] == "set_role":
        d["nodes"] = [e for e in d["nodes"] if e["node"] != node]
        _insert(d, node, req["role"], req["position"])
    elif req["kind"] == "switchover":
        owner_changed(g, req["target"])
    elif req["kind"] in ("start", "end"):  # the group's persistent state follows, its owner's executor acts
        if req["kind"] == "start":
            g["owner"] = req["target"]
            clear_failures(state, g)  # as a client's online does
        set_persistent_state(state, g, "online" if req["kind"] == "start" else "offline")
        _refresh(state, g)


def _insert(d, node, role, position):
    same = [i for i, e in enumerate(d["nodes"]) if e["role"] == role]
    pos = position if position is not None else len(same) + 1
    if same and pos <= len(same):
        at = same[pos - 1]
    else:
        at = (same[-1] + 1) if same else len(d["nodes"])
    d["nodes"].insert(at, {"node": node, "role": role})
    d["nodes"] = _normalize(d["nodes"])


def domain_view(state, g):
    d = g.get("domain")
    if d is None:
        return None
    status = crg_status(g)
    return {"group": g["name"], "model": d["model"], "status": status, "status_name": STATUS_NAMES.get(status, str(status)),
            "exit_program": d["exit_program"], "request": d["request"],
            "nodes": [{"node": e["node"], "role": e["role"], "role_number": role_of(d, e["node"])[1],
                       "active": e["node"] in state["view"]["live"]} for e in d["nodes"]]}


def request_view(req):
    return {k: req[k] for k in ("handle", "group_name", "kind", "node", "role", "position", "queue", "action",
                                "phase", "participants", "results", "status", "target", "error")}
