"""The API of groups and resources. Groups and resources are named by name or id.

Online and offline are asynchronous: they return {"status": "ERROR_IO_PENDING", "code":
0x3E5, "handle"}; Operation.wait(handle, timeout) waits for the outcome.
"""
import asyncio
import time
import uuid

from . import agents, groups, placement
from .errors import ClusterError
from .method import require, rpc

RO, OP, ADMIN = "read-only", "pool-operator", "pool-admin"
GROUP = ("group", "string")
RESOURCE = ("resource", "string")


def group_view(state, g):
    return {
        "name": g["name"], "id": g["id"], "owner": g["owner"], "state": g["state"],
        "persistent_state": g["persistent_state"], "state_sequence": g["state_sequence"],
        "preferred_owners": list(g["preferred_owners"]), "flags": g["flags"], "group_type": g["group_type"],
        "anti_affinity": list(g["anti_affinity"]), "special": g["special"],
        "locked": any(state["resources"][r]["locked"] for r in g["resources"]),
        "failover": dict(g["failover"]),
        "failovers": len(g["failures"]), "last_failover": g.get("last_failover"),
        "move": {k: g["move"][k] for k in ("handle", "from", "to", "flags", "phase", "asks")} if g.get("move") else None,
        "resources": [resource_view(state, state["resources"][r]) for r in g["resources"]],
    }


def resource_view(state, r):
    return {
        "name": r["name"], "id": r["id"], "type": r["type"], "group": state["groups"][r["group"]]["name"],
        "state": r["state"], "persistent_state": r["persistent_state"], "pid": r["pid"], "locked": r["locked"],
        "detail": r["detail"], "properties": dict(r["properties"]),
        "dependencies": [state["resources"][d]["name"] for d in r["dependencies"]],
        "restart": dict(r["restart"]), "restarts": len(r["restarts"]), "monitor_interval": r["monitor_interval"],
    }


def _group(state, key):
    g = groups.find_group(state, key)
    if g is None:
        raise ClusterError("ERROR_GROUP_NOT_FOUND", key)
    return g


def _resource(state, key):
    r = groups.find_resource(state, key)
    if r is None:
        raise ClusterError("ERROR_RESOURCE_NOT_FOUND", key)
    return r


LOAD_CACHE = 0.5  # seconds a node's load summary is reused when placing many groups at once
_load = {}  # node -> (monotonic time, placement.node_load(state))


def _owner_for(call, group_key):
    """Where a group commanded online goes when it needs a new owner (groups.new_owner_wanted:
    it has none, or it is offline on a paused node), by the placement policy. The choice
    travels in the command, so a load summary a moment old is good enough."""
    live = call.node.membership.view()["live"]

    def choose(state):
        g = groups.find_group(state, group_key)
        if g is None or not groups.new_owner_wanted(state, g):
            return None
        if g["preferred_owners"]:
            return placement.place_group(state, live, g)
        now = time.monotonic()
        cached = _load.get(call.node)
        if cached is None or now - cached[0] > LOAD_CACHE:
            cached = _load[call.node] = (now, placement.node_load(state))
        choice = placement.place_group(state, live, g, load=cached[1])
        if choice is not None:
            cached[1][0][choice] += 1  # the groups placed before the next summary count too
        return choice
    return call.node.read(choose)


# -- groups -----------------------------------------------------------------------------------
@rpc("Group.create", role=OP, params=(("name", "string"),))
async def group_create(call, name):
    return await call.node.write("group.create", rid=call.rid, name=name, id=str(uuid.uuid4()))


@rpc("Group.delete", role=OP, params=(GROUP, ("force", "bool")))
async def group_delete(call, group, force):
    rid = call.rid or str(uuid.uuid4())  # over XML-RPC a call has none: the two steps share a fresh one
    if force and not call.answered():  # offline first, so that nothing keeps running what is deleted
        g = call.node.read(lambda s: group_view(s, _group(s, group)))
        if g["persistent_state"] == "online" and not g["special"]:
            op = await call.node.write("group.offline", rid=f"{rid}-offline", group=group,
                                       handle=str(uuid.uuid4()))
            await _wait(call, op["handle"], 60.0)
    await call.node.write("group.delete", rid=rid, group=group, force=force)
    return ""


@rpc("Group.rename", role=OP, params=(GROUP, ("name", "string")))
async def group_rename(call, group, name):
    await call.node.write("group.rename", rid=call.rid, group=group, name=name)
    return ""


@rpc("Group.online", role=OP, params=(GROUP,))
async def group_online(call, group):
    return await call.node.write("group.online", rid=call.rid, group=group, handle=str(uuid.uuid4()),
                                 owner=_owner_for(call, group))


@rpc("Group.offline", role=OP, params=(GROUP,))
async def group_offline(call, group):
    return await call.node.write("group.offline", rid=call.rid, group=group, handle=str(uuid.uuid4()))


@rpc("Group.get_state", params=(GROUP,))
async def group_get_state(call, group):
    def get(s):
        g = _group(s, group)
        return {"state": g["state"], "owner": g["owner"], "state_sequence": g["state_sequence"]}
    return call.node.read(get)


@rpc("Group.get_record", params=(GROUP,))
async def group_get_record(call, group):
    return call.node.read(lambda s: group_view(s, _group(s, group)))


@rpc("Group.get_all_records")
async def group_get_all_records(call):
    return call.node.read(lambda s: [group_view(s, g) for g in s["groups"].values()])


def _setter(name, field, ptype, convert=lambda v: v):
    async def set_(call, group, value):
        await call.node.write("group.set", rid=call.rid, group=group, field=field, value=convert(value))
        return ""
    rpc(f"Group.{name}", role=OP, params=(GROUP, ("value", ptype)))(set_)


_setter("set_preferred_owners", "preferred_owners", "string_set")
_setter("set_flags", "flags", "int")
_setter("set_anti_affinity", "anti_affinity", "string_set")


@rpc("Group.set_failover_policy", role=OP, params=(GROUP, ("policy", "properties")))
async def group_set_failover_policy(call, group, policy):
    known = {"threshold": int, "period_hours": (int, float), "failback": str, "failback_window": list}
    for k, v in policy.items():
        if k not in known or not isinstance(v, known[k]) or isinstance(v, bool):
            raise ClusterError("ERROR_INVALID_PARAMETER", k, message=f"failover policy keys: {', '.join(known)}")
    await call.node.write("group.set", rid=call.rid, group=group, field="failover", value=policy)
    return ""


# -- resources --------------------------------------------------------------------------------
def _check_properties(call, method, type_name, properties, current=None):
    named = agents.privileged(type_name, properties, current)
    if named:  # before validation: a caller refused learns nothing of what would be valid
        require(call, ADMIN, method, f"{', '.join(named)} names a program or a path to write")
    problems = agents.validate(type_name, properties)
    if problems:
        raise ClusterError("AGENT_PROPERTIES_INVALID", *problems)


@rpc("Resource.create", role=OP, params=(GROUP, ("name", "string"), ("type", "string"), ("properties", "properties")))
async def resource_create(call, group, name, type_name, properties):
    _check_properties(call, "Resource.create", type_name, properties)
    return await call.node.write("resource.create", rid=call.rid, group=group, name=name, type=type_name,
                                 properties=properties, id=str(uuid.uuid4()))


@rpc("Resource.delete", role=OP, params=(RESOURCE,))
async def resource_delete(call, resource):
    await call.node.write("resource.delete", rid=call.rid, resource=resource)
    return ""


@rpc("Resource.set_properties", role=OP, params=(RESOURCE, ("properties", "properties")))
async def resource_set_properties(call, resource, properties):
    def now(s):
        r = _resource(s, resource)
        return r["type"], dict(r["properties"])
    if not call.answered():
        type_name, current = call.node.read(now)
        _check_properties(call, "Resource.set_properties", type_name, properties, current)
    await call.node.write("resource.set", rid=call.rid, resource=resource, properties=properties)
    return ""


@rpc("Resource.set_restart_policy", role=OP, params=(RESOURCE, ("policy", "properties")))
async def resource_set_restart_policy(call, resource, policy):
    known = {"threshold": int, "period": (int, float), "delay": (int, float), "action": str,
             "monitor_interval": (int, float)}
    for k, v in policy.items():
        if k not in known or not isinstance(v, known[k]) or isinstance(v, bool):
            raise ClusterError("ERROR_INVALID_PARAMETER", k, message=f"restart policy keys: {', '.join(known)}")
    interval = policy.pop("monitor_interval", None)  # its range is resource.set's check (groups.py)
    await call.node.write("resource.set", rid=call.rid, resource=resource, restart=policy or None,
                          monitor_interval=interval)
    return ""


def _dependency(name, op):
    async def run(call, resource, depends_on):
        await call.node.write(op, rid=call.rid, resource=resource, depends_on=depends_on)
        return ""
    rpc(f"Resource.{name}", role=OP, params=(RESOURCE, ("depends_on", "string")))(run)


_dependency("add_dependency", "resource.add_dependency")
_dependency("remove_dependency", "resource.remove_dependency")


@rpc("Resource.move_to_group", role=OP, params=(RESOURCE, ("group", "string")))
async def resource_move_to_group(call, resource, group):
    await call.node.write("resource.move_to_group", rid=call.rid, resource=resource, to=group)
    return ""


@rpc("Resource.online", role=OP, params=(RESOURCE,))
async def resource_online(call, resource):
    owner = None if call.answered() else _owner_for(call, call.node.read(lambda s: _resource(s, resource)["group"]))
    return await call.node.write("resource.online", rid=call.rid, resource=resource, handle=str(uuid.uuid4()),
                                 owner=owner)


@rpc("Resource.offline", role=OP, params=(RESOURCE,))
async def resource_offline(call, resource):
    return await call.node.write("resource.offline", rid=call.rid, resource=resource, handle=str(uuid.uuid4()))


@rpc("Resource.get_record", params=(RESOURCE,))
async def resource_get_record(call, resource):
    return call.node.read(lambda s: resource_view(s, _resource(s, resource)))


@rpc("Resource.get_all_records")
async def resource_get_all_records(call):
    return call.node.read(lambda s: [resource_view(s, r) for r in s["resources"].values()])


# -- operations -------------------------------------------------------------------------------
async def _wait(call, handle, timeout):
    deadline = asyncio.get_running_loop().time() + min(max(timeout, 0.0), 600.0)
    while True:
        op = call.node.read(lambda s: dict(s["operations"].get(handle) or {}))
        if not op:
            raise ClusterError("OPERATION_NOT_FOUND", handle)
        if op["status"] != "pending" or asyncio.get_running_loop().time() >= deadline:
            return dict(op, handle=handle)
        await asyncio.sleep(0.05)


@rpc("Operation.wait", params=(("handle", "string"), ("timeout", "float")))
async def operation_wait(call, handle, timeout):
    """The operation as it stands when it ends or when timeout seconds have passed."""
    return await _wait(call, handle, timeout)
