"""The cluster database and its apply(): the functional core.

State and commands are plain data. apply(state, command) changes `state` in place and returns
a plain-data result; it reads no clock, draws no random number and does no I/O: the submitter
puts times ("at"), uuids and refs in the command. Every handler validates before it mutates,
so a refused command changes nothing. A command carrying a request id ("rid") that was already
applied returns the first result again and changes nothing (retried writes apply once).

The dedup table keeps each result for DEDUP_WINDOW seconds of command time (the "at" the
submitters put in), longer than any client retries: a burst of commands, however large, is
deduplicated whole. DEDUP_MAX only bounds memory, far above what the log commits in a window.
"""
import hashlib

import msgpack

from . import cluster, domains, failover, groups, moves, pause
from .commands import handler_table
from .errors import failure

DEDUP_WINDOW = 120.0  # seconds; a client retries for at most its timeout times its attempts (client.py: 30 s)
DEDUP_MAX = 500_000  # entries: a memory ceiling, ~4,000 writes/s sustained for the whole window
# The state's shape, written in every snapshot (raft.replica keeps it beside the state). 0 is a
# snapshot written before snapshots carried it: the same keys, or fewer when it is older still.
SCHEMA_VERSION = 1


def initial_state():
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


def upgrade(state, version):
    """A state loaded from a snapshot of schema `version`, in this code's shape."""
    if type(version) is not int or not 0 <= version <= SCHEMA_VERSION:
        raise ValueError(f"a snapshot of schema {version!r}: this code reads 0 to {SCHEMA_VERSION}")
    for key, empty in initial_state().items():  # 0 -> 1: a key added since the snapshot was written
        state.setdefault(key, empty)
    return state


def _canonical(value):
    """Plain data with every map's keys sorted, so that equal states pack to equal bytes."""
    if isinstance(value, dict):
        return [[k, _canonical(v)] for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def state_hash(state):
    """A short hash of the whole state: equal states hash equal, whatever their maps' order."""
    return hashlib.sha256(msgpack.packb(_canonical(state), use_bin_type=True)).hexdigest()[:16]


# -- apply ------------------------------------------------------------------------------------
# op -> (precondition or None, handler): every module with handlers is named here, so that
# importing db alone applies every command as the daemon does.
HANDLERS = handler_table(cluster, pause, groups, domains, moves, failover)


def first_result(state, rid):
    """The result the command of this request id got when it applied, or None."""
    entry = state["applied"].get(rid) if isinstance(rid, str) else None
    return entry[1] if entry else None


def precheck(state, command):
    """What a command is bound to get in this state without a log entry: the first result of
    its request id (a retry), else the failure its precondition predicts; None otherwise."""
    needs = HANDLERS.get(command.get("op"), (None, None))[0]
    return first_result(state, command.get("rid")) or (needs(state, command) if needs else None)


def _remember(state, rid, at, result):
    applied = state["applied"]
    applied[rid] = [at, result]
    horizon = at - DEDUP_WINDOW if at is not None else None
    while applied:
        oldest = next(iter(applied))
        then = applied[oldest][0]
        if len(applied) <= DEDUP_MAX and not (horizon is not None and (then is None or then < horizon)):
            break
        del applied[oldest]


def apply(state, command):
    if not isinstance(command, dict) or not isinstance(command.get("op"), str) or command["op"] not in HANDLERS:
        return failure("MESSAGE_METHOD_UNKNOWN", repr(command.get("op") if isinstance(command, dict) else command))
    rid = command.get("rid")
    first = first_result(state, rid)
    if first is not None:
        return first
    needs, fn = HANDLERS[command["op"]]
    result = (needs and needs(state, command)) or fn(state, command)
    if isinstance(rid, str):
        at = command.get("at")
        _remember(state, rid, at if isinstance(at, (int, float)) and not isinstance(at, bool) else None, result)
    return result
