"""The cluster database and its apply(): the functional core.

State and commands are plain data. apply(state, command) changes `state` in place and returns
a plain-data result; it reads no clock, draws no random number and does no I/O: the submitter
puts times ("at"), uuids and refs in the command. Every handler validates before it mutates,
so a refused command changes nothing. A command carrying a request id ("rid") that was already
applied returns the first result again and changes nothing (retried writes apply once).
"""
from .errors import failure

DEDUP_KEEP = 20000
CLUSTER_STACK = "corosync"
CLUSTER_STACK_VERSION = 2


def initial_state():
    return {
        "bootstrapped": False,
        "cluster": None,  # the Cluster record, or None when no cluster exists
        "network": None,  # the cluster interconnect: {uuid, ref}
        "members": {},  # name -> {name, raft, heartbeat, api, votes, host_uuid, host_ref, pif_uuid, pif_ref}
        "cluster_hosts": {},  # ref -> Cluster_host record
        "view": {"live": [], "at": None, "by": None},  # the committed membership view
        "applied": {},  # rid -> result, oldest first
    }


def ok(value=None):
    return {"ok": value}


# -- handlers ---------------------------------------------------------------------------------
HANDLERS = {}


def handler(op):
    def deco(fn):
        HANDLERS[op] = fn
        return fn
    return deco


def _cluster(state, ref):
    c = state["cluster"]
    if c is None or (ref is not None and c["ref"] != ref):
        return None
    return c


def _new_cluster_hosts(state, cmd, names):
    """Cluster_host records for `names`; refs/uuids come from the command."""
    ids = cmd.get("cluster_host_ids", {})
    out = {}
    for name in names:
        ref, uuid = ids[name]
        out[ref] = {
            "uuid": uuid, "ref": ref, "host": name, "enabled": True, "joined": True,
            "live": name in state["view"]["live"], "last_update_live": cmd["at"],
            "PIF": state["members"][name]["pif_ref"], "other_config": {},
        }
    return out


@handler("member.bootstrap")
def _bootstrap(state, cmd):
    """The first leader records the configured members and creates the cluster."""
    if state["bootstrapped"]:
        return failure("CLUSTER_ALREADY_EXISTS")
    for m in cmd["members"]:
        state["members"][m["name"]] = dict(m)
    state["network"] = dict(cmd["network"])
    state["bootstrapped"] = True
    return _create(state, cmd, names=[m["name"] for m in cmd["members"]])


def _create(state, cmd, names):
    if state["cluster"] is not None:
        return failure("CLUSTER_ALREADY_EXISTS", state["cluster"]["ref"])
    if cmd["cluster_stack"] != CLUSTER_STACK:
        return failure("INVALID_CLUSTER_STACK", cmd["cluster_stack"])
    missing = [n for n in names if n not in state["members"]]
    if missing:
        return failure("HANDLE_INVALID", "host", *missing)
    state["cluster"] = {
        "uuid": cmd["uuid"], "ref": cmd["ref"],
        "network": state["network"]["ref"],
        "cluster_config": dict(cmd.get("cluster_config", {})),
        "cluster_stack": CLUSTER_STACK,
        "cluster_stack_version": CLUSTER_STACK_VERSION,
        "cluster_token": cmd["cluster_token"],
        "pool_auto_join": bool(cmd["pool_auto_join"]),
        "token_timeout": float(cmd["token_timeout"]),
        "token_timeout_coefficient": float(cmd["token_timeout_coefficient"]),
        "other_config": {},
        "pending_forget": [],
    }
    state["cluster_hosts"] = _new_cluster_hosts(state, cmd, names)
    return ok(cmd["ref"])


@handler("cluster.create")
def _cluster_create(state, cmd):
    """Cluster.create: the cluster with one Cluster_host (cmd["hosts"] has one name);
    Cluster.pool_create: every member of the pool."""
    return _create(state, cmd, names=list(cmd["hosts"]))


@handler("cluster.destroy")
def _cluster_destroy(state, cmd):
    if _cluster(state, cmd["self"]) is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    if len(state["cluster_hosts"]) != 1:
        return failure("CLUSTER_DOES_NOT_HAVE_ONE_NODE", len(state["cluster_hosts"]))
    return _drop_cluster(state)


def _drop_cluster(state):
    state["cluster"] = None
    state["cluster_hosts"] = {}
    return ok()


@handler("cluster.pool_destroy")
def _pool_destroy(state, cmd):
    if _cluster(state, cmd["self"]) is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    disabled = [ref for ref, ch in state["cluster_hosts"].items() if not ch["enabled"]]
    if disabled:
        return failure("CLUSTERING_DISABLED", disabled[0])
    return _drop_cluster(state)


@handler("cluster.pool_force_destroy")
def _pool_force_destroy(state, cmd):
    if _cluster(state, cmd["self"]) is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    return _drop_cluster(state)


@handler("cluster.pool_resync")
def _pool_resync(state, cmd):
    """Create the Cluster_host records that are missing, and enable every one."""
    if _cluster(state, cmd["self"]) is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    have = {ch["host"] for ch in state["cluster_hosts"].values()}
    missing = [n for n in state["members"] if n not in have]
    state["cluster_hosts"].update(_new_cluster_hosts(state, cmd, missing))
    for ch in state["cluster_hosts"].values():
        ch["enabled"] = ch["joined"] = True
    return ok()


@handler("cluster.set_other_config")
def _set_other_config(state, cmd):
    c = _cluster(state, cmd["self"])
    if c is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    c["other_config"] = dict(cmd["value"])
    return ok()


@handler("cluster.add_to_other_config")
def _add_to_other_config(state, cmd):
    c = _cluster(state, cmd["self"])
    if c is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    if cmd["key"] in c["other_config"]:
        return failure("MAP_DUPLICATE_KEY", "Cluster", "other_config", cmd["self"], cmd["key"])
    c["other_config"][cmd["key"]] = cmd["value"]
    return ok()


@handler("cluster.remove_from_other_config")
def _remove_from_other_config(state, cmd):
    c = _cluster(state, cmd["self"])
    if c is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    c["other_config"].pop(cmd["key"], None)
    return ok()


@handler("cluster.cas_other_config")
def _cas_other_config(state, cmd):
    """Compare-and-set one key: expected None means "absent"; new None removes the key.
    Returns {"swapped": bool, "value": the value before}."""
    c = _cluster(state, cmd["self"])
    if c is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    before = c["other_config"].get(cmd["key"])
    if before != cmd["expected"]:
        return ok({"swapped": False, "value": before})
    if cmd["new"] is None:
        c["other_config"].pop(cmd["key"], None)
    else:
        c["other_config"][cmd["key"]] = cmd["new"]
    return ok({"swapped": True, "value": before})


@handler("membership.view")
def _membership_view(state, cmd):
    """The leader's measured view: who is live, decided at cmd["at"] by cmd["by"]."""
    live = sorted(n for n in cmd["live"] if n in state["members"])
    state["view"] = {"live": live, "at": cmd["at"], "by": cmd["by"]}
    for ch in state["cluster_hosts"].values():
        is_live = ch["host"] in live
        if ch["live"] != is_live:
            ch["live"] = is_live
            ch["last_update_live"] = cmd["at"]
    return ok()


@handler("member.add")
def _member_add(state, cmd):
    m = cmd["member"]
    if m["name"] in state["members"]:
        return failure("INVALID_VALUE", "name", m["name"], message="a member of that name exists")
    taken = {a for o in state["members"].values() for a in (o["raft"], o["heartbeat"], o["api"])}
    if taken & {m["raft"], m["heartbeat"], m["api"]}:
        return failure("INVALID_VALUE", "address", message="an address is already used by a member")
    state["members"][m["name"]] = dict(m)
    c = state["cluster"]
    if c is not None and c["pool_auto_join"]:
        state["cluster_hosts"].update(_new_cluster_hosts(state, cmd, [m["name"]]))
    return ok()


@handler("member.remove")
def _member_remove(state, cmd):
    name = cmd["name"]
    if name not in state["members"]:
        return failure("HANDLE_INVALID", "host", name)
    if len(state["members"]) == 1:
        return failure("CLUSTER_HOST_IS_LAST", name)
    del state["members"][name]
    state["cluster_hosts"] = {r: ch for r, ch in state["cluster_hosts"].items() if ch["host"] != name}
    state["view"]["live"] = [n for n in state["view"]["live"] if n != name]
    return ok()


# -- apply ------------------------------------------------------------------------------------
def apply(state, command):
    if not isinstance(command, dict) or command.get("op") not in HANDLERS:
        return failure("MESSAGE_METHOD_UNKNOWN", repr(command.get("op") if isinstance(command, dict) else command))
    rid = command.get("rid")
    applied = state["applied"]
    if rid is not None and rid in applied:
        return applied[rid]
    result = HANDLERS[command["op"]](state, command)
    if rid is not None:
        applied[rid] = result
        while len(applied) > DEDUP_KEEP:
            del applied[next(iter(applied))]
    return result
