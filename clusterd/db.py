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
from typing import Any

import msgpack

from . import cluster, domains, failover, groups, moves, pause
from .commands import handler_table
from .errors import failure
from .schema import Command, Result, State
from .schema import SCHEMA_VERSION as SCHEMA_VERSION, initial_state as initial_state, upgrade as upgrade  # db's too

DEDUP_WINDOW = 120.0  # seconds; a client retries for at most its timeout times its attempts (client.py: 30 s)
DEDUP_MAX = 500_000  # entries: a memory ceiling, ~4,000 writes/s sustained for the whole window
def _canonical(value: Any) -> Any:
    """Plain data with every map's keys sorted, so that equal states pack to equal bytes."""
    if isinstance(value, dict):
        return [[k, _canonical(v)] for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def state_hash(state: State) -> str:
    """A short hash of the whole state: equal states hash equal, whatever their maps' order."""
    return hashlib.sha256(msgpack.packb(_canonical(state), use_bin_type=True)).hexdigest()[:16]


# -- apply ------------------------------------------------------------------------------------
# op -> (precondition or None, handler): every module with handlers is named here, so that
# importing db alone applies every command as the daemon does.
HANDLERS = handler_table(cluster, pause, groups, domains, moves, failover)


def first_result(state: State, rid: object) -> Result | None:
    """The result the command of this request id got when it applied, or None."""
    entry = state["applied"].get(rid) if isinstance(rid, str) else None
    return entry[1] if entry else None


def precheck(state: State, command: Command) -> Result | None:
    """What a command is bound to get in this state without a log entry: the first result of
    its request id (a retry), else the failure its precondition predicts; None otherwise."""
    op = command.get("op")
    needs = HANDLERS[op][0] if isinstance(op, str) and op in HANDLERS else None
    return first_result(state, command.get("rid")) or (needs(state, command) if needs else None)


def _remember(state: State, rid: str, at: float | None, result: Result) -> None:
    applied = state["applied"]
    applied[rid] = [at, result]
    horizon = at - DEDUP_WINDOW if at is not None else None
    while applied:
        oldest = next(iter(applied))
        then = applied[oldest][0]
        if len(applied) <= DEDUP_MAX and not (horizon is not None and (then is None or then < horizon)):
            break
        del applied[oldest]


def apply(state: State, command: object) -> Result:
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
