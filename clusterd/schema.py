"""The shape of the cluster database: every top-level key of the state with its type, the
state of a new cluster, and the version of the shape that snapshots carry. The records under
the keys are plain maps (their fields: the modules that make them, named beside each key)."""
from typing import Any, TypedDict, cast

Record = dict[str, Any]
Command = dict[str, Any]  # plain data: "op", maybe "rid" and "at", and the op's own fields
Result = dict[str, Any]  # {"ok": value} or {"error": [code, number, message, params...]}


class State(TypedDict):
    bootstrapped: bool
    cluster: Record | None
    network: Record | None
    members: dict[str, Record]
    cluster_hosts: dict[str, Record]
    view: Record
    applied: dict[str, list[Any]]
    groups: dict[str, Record]
    resources: dict[str, Record]
    operations: dict[str, Record]
    names: dict[str, dict[str, str]]
    fence: dict[str, Record]
    nodes: dict[str, Record]
    domain_requests: dict[str, Record]
    queues: dict[str, dict[str, Record]]
    queue_order: list[list[str]]


# The state's shape, written in every snapshot (raft.replica keeps it beside the state). 0 is a
# snapshot written before snapshots carried it: the same keys, or fewer when it is older still.
SCHEMA_VERSION = 1


def initial_state() -> State:
    """The state of a cluster that was never bootstrapped; it has every top-level key, so code
    reads state["key"] and never has to supply a default."""
    return {
        "bootstrapped": False,
        "cluster": None,  # the Cluster record, or None when no cluster exists
        "network": None,  # the cluster interconnect: {uuid, ref}
        "members": {},  # name -> {name, raft, heartbeat, api, votes, host_uuid, host_ref, pif_uuid, pif_ref}
        "cluster_hosts": {},  # ref -> Cluster_host record
        "view": {"live": [], "at": None, "by": None},  # the committed membership view
        "applied": {},  # rid -> [at, result], in the order applied
        "groups": {},  # id -> group (groups.py)
        "resources": {},  # id -> resource
        "operations": {},  # handle -> an asynchronous online/offline and how it ended
        "names": {"group": {}, "resource": {}},  # casefolded name or id -> id
        "fence": {},  # node -> {status requested|fenced|failed, agent, at, detail} (failover.py)
        "nodes": {},  # node -> pause record: paused, drain status, flags (pause.py)
        "domain_requests": {},  # handle -> a recovery domain request and how it ended (domains.py)
        "queues": {},  # results queue -> {request handle -> completion} (events.py)
        "queue_order": [],  # [queue, key], oldest first (events.py bounds the queues)
    }


def upgrade(state: dict[str, Any], version: object) -> State:
    """A state loaded from a snapshot of schema `version`, in this code's shape."""
    if type(version) is not int or not 0 <= version <= SCHEMA_VERSION:
        raise ValueError(f"a snapshot of schema {version!r}: this code reads 0 to {SCHEMA_VERSION}")
    for key, empty in initial_state().items():  # 0 -> 1: a key added since the snapshot was written
        state.setdefault(key, empty)
    return cast(State, state)
