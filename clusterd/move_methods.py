"""The API of group moves: Group.move (MoveClusterGroupEx) and Group.cancel_move.

Group.move(group, destination | null, flags, property_list) -> {"status": "ERROR_IO_PENDING",
"code": 0x3E5, "handle"}; Operation.wait(handle, timeout) follows it to its outcome. A move
that is refused at once (unknown group or node, destination not Up, locked resources without
CLUSAPI_GROUP_MOVE_IGNORE_RESOURCE_STATUS, bad flags or property list, a move already in
progress) raises its error and commits nothing. The page's "Full access" is pool-operator.
"""
import uuid

from . import groups, moves, placement
from .errors import ClusterError
from .method import rpc

OP = "pool-operator"


def _destination(call, group, destination):
    """The node named, which must be Up in this node's live view; or, for null, the best
    node by the placement policy other than the group's owner."""
    live = call.node.membership.view()["live"]
    if destination is not None:
        if destination not in call.node.read(lambda s: s["members"]):
            raise ClusterError("ERROR_CLUSTER_NODE_NOT_FOUND", destination)
        if destination not in live:
            raise ClusterError("ERROR_CLUSTER_NODE_DOWN", destination, message="the destination node is not Up")
        return destination

    def choose(state):
        g = groups.find_group(state, group)
        if g is None:
            raise ClusterError("ERROR_GROUP_NOT_FOUND", group)
        return placement.place_group(state, [n for n in live if n in state["view"]["live"]], g,
                                     exclude=[g["owner"]] if g["owner"] else [])
    return call.node.read(choose)


@rpc("Group.move", role=OP, params=(("group", "string"), ("destination", "nullable_string"), ("flags", "int"),
                                    ("property_list", "properties")))
async def group_move(call, group, destination, flags, property_list):
    problem = moves.flag_problem(flags) or moves.property_list_problem(property_list)
    if problem:
        raise ClusterError("ERROR_INVALID_PARAMETER", message=problem)
    to = None if call.answered() else _destination(call, group, destination)
    return await call.node.write("group.move", rid=call.rid, group=group, to=to, flags=flags,
                                 properties=property_list, handle=str(uuid.uuid4()))


@rpc("Group.cancel_move", role=OP, params=(("group", "string"),))
async def group_cancel_move(call, group):
    await call.node.write("group.cancel_move", rid=call.rid, group=group)
    return ""
