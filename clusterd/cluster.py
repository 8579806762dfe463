"""The cluster's own records as commands change them: the Cluster, its Cluster_hosts, the
members and the committed membership view (XenAPI's Cluster and Cluster_host classes)."""
from .commands import first, handler, ok
from .errors import failure

CLUSTER_STACK = "corosync"
CLUSTER_STACK_VERSION = 2


def _needs_cluster_host(state, cmd):
    if _cluster_host(state, cmd["self"]) is None:
        return failure("HANDLE_INVALID", "Cluster_host", cmd["self"])
    return None


def _needs_cluster(state, cmd):
    if _cluster(state, cmd["self"]) is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["self"])
    return None


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
    if cmd["cluster_stack"] != CLUSTER_STACK:  # validate before recording anything
        return failure("INVALID_CLUSTER_STACK", cmd["cluster_stack"])
    for m in cmd["members"]:
        state["members"][m["name"]] = dict(m)
    state["network"] = dict(cmd["network"])
    state["bootstrapped"] = True
    return _create(state, cmd, names=[m["name"] for m in cmd["members"]])


def _create_problem(state, cmd, names):
    if state["cluster"] is not None:
        return failure("CLUSTER_ALREADY_EXISTS", state["cluster"]["ref"])
    if cmd["cluster_stack"] != CLUSTER_STACK:
        return failure("INVALID_CLUSTER_STACK", cmd["cluster_stack"])
    missing = [n for n in names if n not in state["members"]]
    if missing:
        return failure("HANDLE_INVALID", "host", *missing)
    return None


def _create(state, cmd, names):
    refused = _create_problem(state, cmd, names)
    if refused:
        return refused
    hosts = _new_cluster_hosts(state, cmd, names)  # may raise on a bad command: before any change
    state["cluster"] = {
        "uuid": cmd["uuid"], "ref": cmd["ref"],
        "network": state["network"]["ref"],
        "cluster_config": dict(cmd.get("cluster_config", {})),
        "cluster_stack": CLUSTER_STACK,
        "cluster_stack_version": CLUSTER_STACK_VERSION,
        "pool_auto_join": bool(cmd["pool_auto_join"]),
        "token_timeout": float(cmd["token_timeout"]),
        "token_timeout_coefficient": float(cmd["token_timeout_coefficient"]),
        "other_config": {},
        "pending_forget": [],  # the IPs of the members in "forgotten" (each IP once)
        "forgotten": [],  # names of the members marked permanently dead, not yet removed
    }
    state["cluster_hosts"] = hosts
    return ok(cmd["ref"])


@handler("cluster.create", needs=lambda state, cmd: _create_problem(state, cmd, list(cmd["hosts"])))
def _cluster_create(state, cmd):
    """Cluster.create: the cluster with one Cluster_host (cmd["hosts"] has one name);
    Cluster.pool_create: every member of the pool."""
    return _create(state, cmd, names=list(cmd["hosts"]))


@handler("cluster.destroy", needs=_needs_cluster)
def _cluster_destroy(state, cmd):
    if len(state["cluster_hosts"]) != 1:
        return failure("CLUSTER_DOES_NOT_HAVE_ONE_NODE", len(state["cluster_hosts"]))
    return _stack_in_use(state) or _drop_cluster(state)


def _stack_in_use(state):
    """The stack is in use while any group other than the core one exists."""
    used = [g["name"] for g in state["groups"].values() if not g["special"]]
    return failure("CLUSTER_STACK_IN_USE", *used[:10]) if used else None


def _drop_cluster(state):
    state["cluster"] = None
    state["cluster_hosts"] = {}
    return ok()


@handler("cluster.pool_destroy", needs=_needs_cluster)
def _pool_destroy(state, cmd):
    disabled = [ref for ref, ch in state["cluster_hosts"].items() if not ch["enabled"]]
    if disabled:
        return failure("CLUSTERING_DISABLED", disabled[0])
    return _stack_in_use(state) or _drop_cluster(state)


@handler("cluster.pool_force_destroy", needs=_needs_cluster)
def _pool_force_destroy(state, cmd):
    return _drop_cluster(state)


@handler("cluster.pool_resync", needs=_needs_cluster)
def _pool_resync(state, cmd):
    """Create the Cluster_host records that are missing, and enable every one."""
    have = {ch["host"] for ch in state["cluster_hosts"].values()}
    missing = [n for n in state["members"] if n not in have and not _forgotten(state, n)]
    state["cluster_hosts"].update(_new_cluster_hosts(state, cmd, missing))
    for ch in state["cluster_hosts"].values():
        ch["enabled"] = ch["joined"] = True
    return ok()


@handler("cluster.set_other_config", needs=_needs_cluster)
def _set_other_config(state, cmd):
    c = state["cluster"]
    c["other_config"] = dict(cmd["value"])
    return ok()


def _key_taken(state, cmd):
    if cmd["key"] in state["cluster"]["other_config"]:
        return failure("MAP_DUPLICATE_KEY", "Cluster", "other_config", cmd["self"], cmd["key"])
    return None


@handler("cluster.add_to_other_config", needs=first(_needs_cluster, _key_taken))
def _add_to_other_config(state, cmd):
    state["cluster"]["other_config"][cmd["key"]] = cmd["value"]
    return ok()


@handler("cluster.remove_from_other_config", needs=_needs_cluster)
def _remove_from_other_config(state, cmd):
    c = state["cluster"]
    c["other_config"].pop(cmd["key"], None)
    return ok()


@handler("cluster.cas_other_config", needs=_needs_cluster)
def _cas_other_config(state, cmd):
    """Compare-and-set one key: expected None means "absent"; new None removes the key.
    Returns {"swapped": bool, "value": the value before}."""
    c = state["cluster"]
    before = c["other_config"].get(cmd["key"])
    if before != cmd["expected"]:
        return ok({"swapped": False, "value": before})
    if cmd["new"] is None:
        c["other_config"].pop(cmd["key"], None)
    else:
        c["other_config"][cmd["key"]] = cmd["new"]
    return ok({"swapped": True, "value": before})


# -- Cluster_host -----------------------------------------------------------------------------
def _cluster_host(state, ref):
    return state["cluster_hosts"].get(ref) if isinstance(ref, str) else None


def _needs_cluster_host_create(state, cmd):
    if _cluster(state, cmd["cluster"]) is None:
        return failure("HANDLE_INVALID", "Cluster", cmd["cluster"])
    name = next((n for n, m in state["members"].items() if m["host_ref"] == cmd["host"]), None)
    if name is None:
        return failure("HANDLE_INVALID", "host", cmd["host"])
    member = state["members"][name]
    if cmd["pif"] != member["pif_ref"]:
        if any(m["pif_ref"] == cmd["pif"] for m in state["members"].values()):
            return failure("PIF_NOT_ATTACHED_TO_HOST", cmd["pif"], cmd["host"])
        return failure("HANDLE_INVALID", "PIF", cmd["pif"])
    if any(ch["host"] == name for ch in state["cluster_hosts"].values()):
        return failure("INVALID_VALUE", "host", cmd["host"], message="the host already has a Cluster_host")
    if _forgotten(state, name):
        return failure("INVALID_VALUE", "host", cmd["host"], message="the host was forgotten: it must not rejoin")
    return None


@handler("cluster_host.create", needs=_needs_cluster_host_create)
def _cluster_host_create(state, cmd):
    """Join one host (cmd["host"] is its host ref) to the cluster on its PIF."""
    name = next(n for n, m in state["members"].items() if m["host_ref"] == cmd["host"])
    state["cluster_hosts"].update(_new_cluster_hosts(state, {"cluster_host_ids": {name: cmd["ids"]}, "at": cmd["at"]},
                                                     [name]))
    return ok(cmd["ids"][0])


@handler("cluster_host.destroy", needs=_needs_cluster_host)
def _cluster_host_destroy(state, cmd):
    ch = state["cluster_hosts"][cmd["self"]]
    if not ch["enabled"]:
        return failure("CLUSTERING_DISABLED", cmd["self"])
    if len(state["cluster_hosts"]) == 1:
        return failure("CLUSTER_HOST_IS_LAST", cmd["self"])
    del state["cluster_hosts"][cmd["self"]]
    return ok()


@handler("cluster_host.force_destroy", needs=_needs_cluster_host)
def _cluster_host_force_destroy(state, cmd):
    """Whatever its state, even the last one (Cluster.pool_force_destroy's step)."""
    del state["cluster_hosts"][cmd["self"]]
    return ok()


def _set_enabled(state, cmd, enabled):
    ch = state["cluster_hosts"][cmd["self"]]
    ch["enabled"] = enabled
    return ok()


@handler("cluster_host.enable", needs=_needs_cluster_host)
def _cluster_host_enable(state, cmd):
    return _set_enabled(state, cmd, True)


@handler("cluster_host.disable", needs=_needs_cluster_host)
def _cluster_host_disable(state, cmd):
    return _set_enabled(state, cmd, False)


# -- pending_forget ---------------------------------------------------------------------------
# The Cluster page: pending_forget stores "the IP of cluster members marked as permanently dead
# but not yet removed". It holds each such member's IP (its heartbeat address without the port),
# each IP once: where members share one IP (a local cluster, all on 127.0.0.1) the IP stays while
# any of them waits for its removal. Which members are forgotten is kept by name ("forgotten"),
# since an IP alone cannot tell members on one host apart.
def member_ip(address):
    """'10.0.0.3:7200' -> '10.0.0.3'; '[::1]:7200' -> '::1'."""
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _forgotten(state, name):
    c = state["cluster"]
    if c is None:
        return False
    # before the names were kept, pending_forget held the member's IP:PORT
    return name in c.get("forgotten", []) or state["members"][name]["heartbeat"] in c["pending_forget"]


def set_forgotten(state, names):
    c = state["cluster"]
    legacy = [n for n, m in state["members"].items() if m["heartbeat"] in c["pending_forget"] and n not in names]
    names = [n for n in names if n in state["members"]] + legacy
    c["forgotten"] = names
    c["pending_forget"] = list(dict.fromkeys(member_ip(state["members"][n]["heartbeat"]) for n in names))


@handler("cluster_host.forget", needs=_needs_cluster_host)
def _cluster_host_forget(state, cmd):
    """Declare the host permanently dead: drop its Cluster_host and keep its IP in the
    Cluster's pending_forget until the member itself is removed."""
    ch = state["cluster_hosts"][cmd["self"]]
    if len(state["cluster_hosts"]) == 1:
        return failure("CLUSTER_HOST_IS_LAST", cmd["self"])
    set_forgotten(state, list(dict.fromkeys(state["cluster"].get("forgotten", []) + [ch["host"]])))
    del state["cluster_hosts"][cmd["self"]]
    return ok()


@handler("membership.view")
def _membership_view(state, cmd):
    """The leader's measured view: who is live, decided at cmd["at"] by cmd["by"]."""
    live = sorted(n for n in cmd["live"] if n in state["members"])
    state["view"] = {"live": live, "at": cmd["at"], "by": cmd["by"]}
    for n in live:  # a fence speaks only for the absence it was made for (failover.py); a hand-over
        if not state["fence"].get(n, {}).get("live"):  # fence of a live node ends with fence.clear
            state["fence"].pop(n, None)
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
