"""The API's methods: session, Cluster (the seed page), Cluster_host, host, pool, network, PIF,
task, Node.

Records are built from the committed database plus, for the runtime fields the seed marks
"RO/runtime" (is_quorate, live_hosts, quorum, each Cluster_host's live), this node's own
measured view. The pool is the cluster's (its ref derives from the interconnect network's) and
its master is the Raft leader as this node sees it.
"""
import asyncio
import uuid

from .cluster import CLUSTER_STACK
from .errors import ClusterError
from .node import new_ids
from .method import rpc
from .tasks import NULL_REF

RO, OP, ADMIN = "read-only", "pool-operator", "pool-admin"
SELF = ("self", "ref")
CLUSTER_OPERATIONS = ("add", "remove", "enable", "disable", "destroy")


# -- session ----------------------------------------------------------------------------------
async def _login(call, user, password):
    role = await asyncio.get_running_loop().run_in_executor(
        None, call.node.sessions.check_password, user, password)
    if role is None:
        raise ClusterError("SESSION_AUTHENTICATION_FAILED", user)
    return call.node.sessions.open(user, role)


# xapi's slave_local_login_with_password / local_logout log in to the one host asked; every
# clusterd session is already local to the node that made it, so they are the same calls.
@rpc("session.login_with_password", params=(("uname", "string"), ("pwd", "string")), session=False)
@rpc("session.slave_local_login_with_password", params=(("uname", "string"), ("pwd", "string")), session=False)
async def login_with_password(call, user, password):
    return await _login(call, user, password)


@rpc("session.logout")
@rpc("session.local_logout")
async def logout(call):
    call.node.sessions.close(call.session_ref)
    return ""


@rpc("session.get_role")
async def get_role(call):
    return call.session["role"]


# -- Cluster ----------------------------------------------------------------------------------
def _cluster_or_fail(state, ref):
    c = state["cluster"]
    if c is None or c["ref"] != ref:
        raise ClusterError("HANDLE_INVALID", "Cluster", ref)
    return c


def cluster_record(node, state, c, role):
    v = node.membership.view()
    hosts = sorted(state["cluster_hosts"])
    allowed = [op for op in CLUSTER_OPERATIONS
               if not (op == "destroy" and len(hosts) != 1) and not (op == "remove" and len(hosts) < 2)]
    return {
        "uuid": c["uuid"],
        "cluster_hosts": hosts,
        "cluster_config": dict(c["cluster_config"]),
        "cluster_stack": c["cluster_stack"],
        "cluster_stack_version": c["cluster_stack_version"],
        # never in the replicated state (so never in raft.journal or raft.dump): this node's
        # token, as it read it from its token file at start
        "cluster_token": node.token.decode(errors="replace") if role == ADMIN else "",
        "allowed_operations": allowed,
        "current_operations": {},
        "is_quorate": v["is_quorate"],
        "live_hosts": v["live_hosts"],
        "quorum": v["quorum"],
        "expected_hosts": v["expected_votes"],
        "pending_forget": list(c["pending_forget"]),
        "pool_auto_join": c["pool_auto_join"],
        "token_timeout": c["token_timeout"],
        "token_timeout_coefficient": c["token_timeout_coefficient"],
        "other_config": dict(c["other_config"]),
    }


def _record(call, ref):
    return call.node.read(lambda s: cluster_record(call.node, s, _cluster_or_fail(s, ref), call.session["role"]))


@rpc("Cluster.get_record", params=(SELF,))
async def cluster_get_record(call, ref):
    return _record(call, ref)


@rpc("Cluster.get_all")
async def cluster_get_all(call):
    return call.node.read(lambda s: [s["cluster"]["ref"]] if s["cluster"] else [])


@rpc("Cluster.get_all_records")
async def cluster_get_all_records(call):
    def records(s):
        c = s["cluster"]
        return {c["ref"]: cluster_record(call.node, s, c, call.session["role"])} if c else {}
    return call.node.read(records)


@rpc("Cluster.get_by_uuid", params=(("uuid", "string"),))
async def cluster_get_by_uuid(call, uuid_):
    def find(s):
        c = s["cluster"]
        if c is None or c["uuid"] != uuid_:
            raise ClusterError("UUID_INVALID", "Cluster", uuid_)
        return c["ref"]
    return call.node.read(find)


def _getter(field, role):
    async def get(call, ref):
        return _record(call, ref)[field]
    rpc(f"Cluster.get_{field}", role=role, params=(SELF,))(get)


for _field in ("uuid", "cluster_hosts", "cluster_config", "cluster_stack", "cluster_stack_version",
               "allowed_operations", "current_operations", "is_quorate", "live_hosts", "quorum",
               "expected_hosts", "pending_forget", "pool_auto_join", "token_timeout",
               "token_timeout_coefficient", "other_config"):
    _getter(_field, RO)
# The token lets its holder join the Raft channel: pool-admin only, over the seed page's
# read-only (docs/security.md).
_getter("cluster_token", ADMIN)


@rpc("Cluster.get_network", params=(SELF,))
async def cluster_get_network(call, ref):
    return call.node.read(lambda s: _cluster_or_fail(s, ref)["network"])


@rpc("Cluster.set_other_config", role=OP, params=(SELF, ("value", "map")))
async def set_other_config(call, ref, value):
    await call.node.write("cluster.set_other_config", rid=call.rid, self=ref, value=value)
    return ""


@rpc("Cluster.add_to_other_config", role=OP, params=(SELF, ("key", "string"), ("value", "string")))
async def add_to_other_config(call, ref, key, value):
    await call.node.write("cluster.add_to_other_config", rid=call.rid, self=ref, key=key, value=value)
    return ""


@rpc("Cluster.remove_from_other_config", role=OP, params=(SELF, ("key", "string")))
async def remove_from_other_config(call, ref, key):
    await call.node.write("cluster.remove_from_other_config", rid=call.rid, self=ref, key=key)
    return ""


@rpc("Cluster.cas_other_config", role=OP,
     params=(SELF, ("key", "string"), ("expected", "nullable_string"), ("new", "nullable_string")))
async def cas_other_config(call, ref, key, expected, new):
    return await call.node.write("cluster.cas_other_config", rid=call.rid, self=ref, key=key,
                                 expected=expected, new=new)


def _check_timeouts(token_timeout, coefficient):
    if not 0.1 <= token_timeout <= 300:
        raise ClusterError("INVALID_VALUE", "token_timeout", token_timeout)
    if not 0 <= coefficient <= 60:
        raise ClusterError("INVALID_VALUE", "token_timeout_coefficient", coefficient)


async def _create(call, hosts, stack, pool_auto_join, token_timeout, coefficient):
    if stack != CLUSTER_STACK:
        raise ClusterError("INVALID_CLUSTER_STACK", stack)
    _check_timeouts(token_timeout, coefficient)
    ref = f"OpaqueRef:{uuid.uuid4()}"
    return await call.node.write(
        "cluster.create", rid=call.rid, hosts=hosts, ref=ref, uuid=str(uuid.uuid4()),
        cluster_stack=stack, pool_auto_join=pool_auto_join, token_timeout=float(token_timeout),
        token_timeout_coefficient=float(coefficient),
        cluster_config={"token_timeout": str(float(token_timeout)),
                        "token_timeout_coefficient": str(float(coefficient))},
        cluster_host_ids={h: [f"OpaqueRef:{uuid.uuid4()}", str(uuid.uuid4())] for h in hosts})


@rpc("Cluster.create", role=OP, params=(("PIF", "ref"), ("cluster_stack", "string"),
                                        ("pool_auto_join", "bool"), ("token_timeout", "float"),
                                        ("token_timeout_coefficient", "float")))
async def cluster_create(call, pif, stack, pool_auto_join, token_timeout, coefficient):
    host = call.node.read(lambda s: next((n for n, m in s["members"].items() if m["pif_ref"] == pif), None))
    if host is None:
        raise ClusterError("HANDLE_INVALID", "PIF", pif)
    return await _create(call, [host], stack, pool_auto_join, token_timeout, coefficient)


@rpc("Cluster.pool_create", role=OP, params=(("network", "ref"), ("cluster_stack", "string"),
                                             ("token_timeout", "float"), ("token_timeout_coefficient", "float")))
async def cluster_pool_create(call, network, stack, token_timeout, coefficient):
    hosts = call.node.read(lambda s: list(s["members"]) if s["network"] and s["network"]["ref"] == network else None)
    if hosts is None:
        raise ClusterError("HANDLE_INVALID", "network", network)
    return await _create(call, hosts, stack, True, token_timeout, coefficient)


def _lifecycle(op):
    async def run(call, ref):
        try:
            await call.node.write(f"cluster.{op}", rid=call.rid, self=ref,
                                  cluster_host_ids=_ids_for_missing_hosts(call) if op == "pool_resync" else {})
        except ClusterError as e:
            if op == "pool_force_destroy" and e.code in ("CLUSTER_NOT_QUORATE", "CLUSTER_NOT_READY"):
                raise ClusterError("CLUSTER_FORCE_DESTROY_FAILED", ref, e.code, message=e.message) from None
            raise
        return ""
    rpc(f"Cluster.{op}", role=OP, params=(SELF,))(run)


def _ids_for_missing_hosts(call):
    names = call.node.read(lambda s: list(s["members"]))
    return {n: [f"OpaqueRef:{uuid.uuid4()}", str(uuid.uuid4())] for n in names}


for _op in ("destroy", "pool_destroy", "pool_force_destroy", "pool_resync"):
    _lifecycle(_op)


# -- Cluster_host ----------------------------------------------------------------------------
@rpc("Cluster_host.create", role=OP, params=(("cluster", "ref"), ("host", "ref"), ("pif", "ref")))
async def cluster_host_create(call, cluster, host, pif):
    return await call.node.write("cluster_host.create", rid=call.rid, cluster=cluster, host=host, pif=pif,
                                 ids=new_ids())


def _cluster_host_op(op, role):
    async def run(call, ref):
        await call.node.write(f"cluster_host.{op}", rid=call.rid, self=ref)
        return ""
    rpc(f"Cluster_host.{op}", role=role, params=(SELF,))(run)


for _op in ("destroy", "force_destroy", "enable", "disable"):
    _cluster_host_op(_op, OP)
_cluster_host_op("forget", ADMIN)  # xapi keeps it to local root: our nearest is pool-admin


# -- the generated messages of Cluster_host, host, pool, network, PIF, task -------------------
def cluster_host_record(node, state, ch):
    m = state["members"][ch["host"]]
    allowed = ["disable", "destroy"] if ch["enabled"] else ["enable"]
    return {
        "uuid": ch["uuid"], "cluster": state["cluster"]["ref"] if state["cluster"] else "",
        "host": m["host_ref"], "enabled": ch["enabled"], "PIF": ch["PIF"], "joined": ch["joined"],
        "live": ch["host"] in node.membership.view()["live"], "last_update_live": ch["last_update_live"],
        "allowed_operations": allowed, "current_operations": {}, "other_config": dict(ch["other_config"]),
    }


API_VERSION = (2, 21)  # what host.get_API_version_major/minor report, so that the SDK's API_version works


def host_record(m):
    return {"uuid": m["host_uuid"], "name_label": m["name"], "hostname": m["name"],
            "address": m["raft"].rsplit(":", 1)[0], "PIFs": [m["pif_ref"]],
            "API_version_major": API_VERSION[0], "API_version_minor": API_VERSION[1],
            "API_version_vendor": "clusterd"}


def pif_record(state, m):
    return {"uuid": m["pif_uuid"], "host": m["host_ref"], "network": state["network"]["ref"],
            "IP": m["heartbeat"].rsplit(":", 1)[0], "device": "lo", "currently_attached": True}


def network_record(state):
    n = state["network"]
    return {"uuid": n["uuid"], "name_label": "cluster interconnect",
            "PIFs": [m["pif_ref"] for m in state["members"].values()]}


def pools(state):
    """The one pool, derived from the interconnect network so that every node names it alike."""
    if not state["network"]:
        return {}
    ns = uuid.UUID(state["network"]["uuid"])
    return {f"OpaqueRef:{uuid.uuid5(ns, 'pool ref')}": str(uuid.uuid5(ns, "pool uuid"))}


def pool_record(node, state, pool_uuid):
    leader = node.replica.status()["leader"]
    master = next((m["host_ref"] for m in state["members"].values() if m["raft"] == leader), None)
    if master is None:  # no leader in sight: this node answers for itself
        master = state["members"].get(node.cfg.name, {}).get("host_ref", NULL_REF)
    return {"uuid": pool_uuid, "name_label": "clusterd", "name_description": "the clusterd cluster",
            "master": master, "other_config": {}}


def task_record(node, state, t):
    me = state["members"].get(node.cfg.name)
    return {**{k: v for k, v in t.items() if k != "owner"},
            "resident_on": me["host_ref"] if me else NULL_REF}


TABLES = {
    # class: ((node, state) -> {ref: raw object}, (node, state, raw object) -> record)
    "Cluster_host": (lambda node, s: s["cluster_hosts"], cluster_host_record),
    "host": (lambda node, s: {m["host_ref"]: m for m in s["members"].values()},
             lambda node, s, m: host_record(m)),
    "pool": (lambda node, s: pools(s), pool_record),
    "PIF": (lambda node, s: {m["pif_ref"]: m for m in s["members"].values()}, lambda node, s, m: pif_record(s, m)),
    "network": (lambda node, s: {s["network"]["ref"]: s["network"]} if s["network"] else {},
                lambda node, s, n: network_record(s)),
    "task": (lambda node, s: node.tasks.records, task_record),
}


def _table_methods(cls, objects, record):
    def get_record(node, s, ref):
        obj = objects(node, s).get(ref) if isinstance(ref, str) else None
        if obj is None:
            raise ClusterError("HANDLE_INVALID", cls, ref)
        return record(node, s, obj)

    async def get_all(call):
        return call.node.read(lambda s: list(objects(call.node, s)))

    async def get_all_records(call):
        return call.node.read(lambda s: {r: record(call.node, s, o) for r, o in objects(call.node, s).items()})

    async def get_record_m(call, ref):
        return call.node.read(lambda s: get_record(call.node, s, ref))

    async def get_by_uuid(call, uuid_):
        def find(s):
            for r, o in objects(call.node, s).items():
                if record(call.node, s, o)["uuid"] == uuid_:
                    return r
            raise ClusterError("UUID_INVALID", cls, uuid_)
        return call.node.read(find)

    rpc(f"{cls}.get_all")(get_all)
    rpc(f"{cls}.get_all_records")(get_all_records)
    rpc(f"{cls}.get_record", params=(SELF,))(get_record_m)
    rpc(f"{cls}.get_by_uuid", params=(("uuid", "string"),))(get_by_uuid)
    return get_record


def _field_getters(cls, get_record, fields):
    for f in fields:
        async def get(call, ref, f=f):
            return call.node.read(lambda s: get_record(call.node, s, ref)[f])
        rpc(f"{cls}.get_{f}", params=(SELF,))(get)


_FIELDS = {
    "Cluster_host": ("uuid", "cluster", "host", "enabled", "PIF", "joined", "live", "last_update_live",
                     "allowed_operations", "current_operations", "other_config"),
    "host": ("uuid", "name_label", "hostname", "address", "PIFs", "API_version_major", "API_version_minor",
             "API_version_vendor"),
    "pool": ("uuid", "name_label", "name_description", "master", "other_config"),
    "PIF": ("uuid", "host", "network", "IP", "device", "currently_attached"),
    "network": ("uuid", "name_label", "PIFs"),
    "task": ("uuid", "name_label", "name_description", "status", "progress", "created", "finished", "result",
             "error_info", "type", "other_config", "allowed_operations", "current_operations", "resident_on",
             "subtask_of", "subtasks"),
}
for _cls, (_objects, _rec) in TABLES.items():
    _field_getters(_cls, _table_methods(_cls, _objects, _rec), _FIELDS[_cls])


@rpc("task.destroy", params=(SELF,))
async def task_destroy(call, ref):
    task = call.node.tasks.get(ref)
    if task["owner"] != call.session["user"] and call.session["role"] != ADMIN:
        raise ClusterError("RBAC_PERMISSION_DENIED", "task.destroy", "only the task's owner or a pool-admin")
    call.node.tasks.destroy(ref)
    return ""


# -- Node: this daemon ------------------------------------------------------------------------
@rpc("Node.status")
async def node_status(call):
    return call.node.status()


@rpc("Node.fence_status")
async def node_fence_status(call):
    """Per node fenced or being fenced: status requested|fenced|failed, agent, attempts, detail."""
    return call.node.read(lambda s: {n: dict(f) for n, f in s["fence"].items()})


@rpc("Node.add", role=ADMIN, params=(("name", "string"), ("raft", "string"), ("heartbeat", "string"),
                                     ("api", "string")))
async def node_add(call, name, raft_addr, heartbeat, api):
    from .config import ConfigError, check_address
    try:
        for what, value in (("raft", raft_addr), ("heartbeat", heartbeat), ("api", api)):
            check_address(what, value)
    except ConfigError as e:
        raise ClusterError("INVALID_VALUE", str(e)) from None
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise ClusterError("INVALID_VALUE", "name", name, message="a node name is 1-64 letters, digits, - or _")
    await call.node.add_member({"name": name, "raft": raft_addr, "heartbeat": heartbeat, "api": api})
    return ""


@rpc("Node.remove", role=ADMIN, params=(("name", "string"),))
async def node_remove(call, name):
    await call.node.remove_member(name)
    return ""
