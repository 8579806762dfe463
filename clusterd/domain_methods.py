"""The API of pausing nodes (Node.pause / Node.resume), recovery domains (Domain.*) and the
results queues (Events.read). Domain requests are asynchronous: they return
{"status": "ERROR_IO_PENDING", "code": 0x3E5, "handle"} at once; the completion is posted to
the queue the caller named, under the handle: Events.read(queue, handle).

The recovery-domain APIs that change a domain cannot be called from an exit program (IBM's
restriction on QcstRemoveNodeFromRcvyDomain and the other CRG APIs): a call that carries the
request an exit program runs for (the clients pass CLUSTERD_REQUEST on) is refused with
DOMAIN_CALLED_FROM_EXIT_PROGRAM before anything is submitted.
"""
import asyncio
import uuid

from . import domains, events, pause
from .errors import ClusterError
from .groups import find_group
from .method import require, rpc

RO, OP = "read-only", "pool-operator"
GROUP = ("group", "string")
QUEUE = ("queue", "string")


def _check_node_name(state, name):
    if name not in state["members"]:
        raise ClusterError("ERROR_INVALID_HANDLE", name)
    return name


# -- Node.pause / Node.resume -----------------------------------------------------------------
@rpc("Node.pause", role=OP, params=(("node", "string"), ("drain", "bool"), ("flags", "int")))
async def node_pause(call, node, drain, flags):
    """ApiPauseNodeEx: ERROR_SUCCESS (pause only) or ERROR_IO_PENDING (a drain has started)."""
    return await call.node.write("node.pause", rid=call.rid, node=node, drain=drain, flags=flags if drain else 0)


@rpc("Node.resume", role=OP, params=(("node", "string"), ("failback", "string")))
async def node_resume(call, node, failback):
    return await call.node.write("node.resume", rid=call.rid, node=node, failback=failback)


@rpc("Node.get_pause_record", params=(("node", "string"),))
async def node_get_pause_record(call, node):
    return call.node.read(lambda s: pause.pause_view(s, _check_node_name(s, node)))


@rpc("Node.get_all_pause_records")
async def node_get_all_pause_records(call):
    return call.node.read(lambda s: [pause.pause_view(s, n) for n in sorted(s["members"])])


# -- Domain -------------------------------------------------------------------------------------
def _not_from_exit_program(call, method):
    if call.exit_request:
        raise ClusterError("DOMAIN_CALLED_FROM_EXIT_PROGRAM", method, call.exit_request, message=(
            f"{method} cannot be called from a cluster resource group exit program "
            f"(this call comes from the exit program of request {call.exit_request})"))


def _group(state, key):
    g = find_group(state, key)
    if g is None:
        raise ClusterError("ERROR_GROUP_NOT_FOUND", key)
    return g


@rpc("Domain.create", role=OP, params=(GROUP, ("model", "string"), ("nodes", "string_set"), ("roles", "string_set"),
                                       ("exit_program", "nullable_string")))
async def domain_create(call, group, model, nodes, roles, exit_program):
    """Give the group a recovery domain: nodes[i] takes roles[i]; backups in the order given."""
    _not_from_exit_program(call, "Domain.create")
    if exit_program is not None:
        require(call, "pool-admin", "Domain.create", "an exit program is a program to run")
    if len(nodes) != len(roles):
        raise ClusterError("ERROR_INVALID_PARAMETER", "roles", message="one role per node")
    await call.node.write("domain.create", rid=call.rid, group=group, model=model, exit_program=exit_program,
                          nodes=[{"node": n, "role": r} for n, r in zip(nodes, roles)])
    return ""


@rpc("Domain.delete", role=OP, params=(GROUP,))
async def domain_delete(call, group):
    _not_from_exit_program(call, "Domain.delete")
    await call.node.write("domain.delete", rid=call.rid, group=group)
    return ""


@rpc("Domain.get", params=(GROUP,))
async def domain_get(call, group):
    def get(s):
        g = _group(s, group)
        view = domains.domain_view(s, g)
        if view is None:
            raise ClusterError("DOMAIN_NOT_FOUND", g["name"])
        return view
    return call.node.read(get)


async def _request(call, kind, group, queue, **args):
    _not_from_exit_program(call, f"Domain.{kind}")
    return await call.node.write("domain.request", rid=call.rid, kind=kind, group=group, queue=queue,
                                 handle=str(uuid.uuid4()), **args)


def _position(position):
    if position < 0 or position > domains.MAX_DOMAIN:
        raise ClusterError("ERROR_INVALID_PARAMETER", "position", message=f"0 (the end) or 1 to {domains.MAX_DOMAIN}")
    return position or None


@rpc("Domain.add_node", role=OP, params=(GROUP, ("node", "string"), ("role", "string"), ("position", "int"), QUEUE))
async def domain_add_node(call, group, node, role, position, queue):
    """Add a node with a role; position among the nodes of that role (1 = first, 0 = last)."""
    return await _request(call, "add_node", group, queue, node=node, role=role, position=_position(position))


@rpc("Domain.remove_node", role=OP, params=(GROUP, ("node", "string"), QUEUE))
async def domain_remove_node(call, group, node, queue):
    return await _request(call, "remove_node", group, queue, node=node)


@rpc("Domain.set_role", role=OP, params=(GROUP, ("node", "string"), ("role", "string"), ("position", "int"), QUEUE))
async def domain_set_role(call, group, node, role, position, queue):
    return await _request(call, "set_role", group, queue, node=node, role=role, position=_position(position))


@rpc("Domain.switchover", role=OP, params=(GROUP, QUEUE))
async def domain_switchover(call, group, queue):
    """Primary -> the first active backup, with the Switchover action code."""
    return await _request(call, "switchover", group, queue)


@rpc("Domain.start", role=OP, params=(GROUP, QUEUE))
async def domain_start(call, group, queue):
    """Start the group (QcstStartClusterResourceGroup): exit program Start on the active nodes,
    then the group goes online on the first node of the order that is Up."""
    return await _request(call, "start", group, queue)


@rpc("Domain.end", role=OP, params=(GROUP, QUEUE))
async def domain_end(call, group, queue):
    """End the group (QcstEndClusterResourceGroup): exit program End, then the group goes offline."""
    return await _request(call, "end", group, queue)


@rpc("Domain.get_request", params=(("handle", "string"),))
async def domain_get_request(call, handle):
    def get(s):
        req = s["domain_requests"].get(handle)
        if req is None:
            raise ClusterError("OPERATION_NOT_FOUND", handle)
        return domains.request_view(req)
    return call.node.read(get)


# -- Events -------------------------------------------------------------------------------------
def _check_queue(queue):
    if not events.valid_queue(queue):
        raise ClusterError("ERROR_INVALID_PARAMETER", "queue", message=f"a queue name is 1-{events.MAX_QUEUE_NAME} printable characters")


@rpc("Events.read", params=(QUEUE, ("key", "string")))
async def events_read(call, queue, key):
    """The completion posted under `key` (a request handle) on `queue`, or nil if none yet."""
    _check_queue(queue)
    return call.node.read(lambda s: events.read(s, queue, key))


@rpc("Events.wait", params=(QUEUE, ("key", "string"), ("timeout", "float")))
async def events_wait(call, queue, key, timeout):
    """Events.read, waiting up to timeout seconds (at most 600) for the entry to arrive."""
    _check_queue(queue)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(timeout, 0.0), 600.0)
    while True:
        entry = call.node.read(lambda s: events.read(s, queue, key))
        if entry is not None or loop.time() >= deadline:
            return entry
        await asyncio.sleep(0.05)
