"""Resource agents: the per-node shell pieces that start, stop and monitor resources.

They run only on the node that owns a resource's group, called by the executor, which
converges what the node runs to the committed state. One module per agent type:

    process   a command supervised by the daemon (process.py)
    ocf       an OCF-style resource agent script (ocf.py)
    dummy     a state file with injectable delays and failures, for tests and demos (dummy.py)

The interface (base.py):

    Context(node, data_dir, witness=None, move_properties={})
        what the executor hands an agent; agents keep files under data_dir/resources/:
        <id>.json, the record of what may run (exists exactly while it may), and <id>.log

    Result(state, locked=False, pid=None, detail="", severity=None, not_now=False)
        state     "online" | "offline" | "failed"
        severity  set when failed: "soft" (try again on this node), "hard" (not on this node;
                  another node may), "fatal" (nowhere, until its configuration is fixed)
        locked    the resource asks to stay where it is (moves need IGNORE_RESOURCE_STATUS)
        not_now   a move is not possible now, but may be soon (for queued moves)
        The process and ocf agents never report locked or not_now (their monitor has no such
        signal), so prepare_move answers "ok" for them; the dummy agent injects both.

    class Agent:
        Agent(resource, ctx)          resource = {"id", "name", "type", "properties": {...}}
        Agent.validate(properties)    -> [problem, ...]; [] = valid. Pure, no I/O: the API
                                      rejects bad properties with it before anything commits.
        await agent.start()           -> Result. Idempotent: never a second copy. A start that
                                      fails has already stopped what it started.
        await agent.stop(timeout=None) -> Result. Leaves nothing running ("offline"), or
                                      says it could not ("failed"; the record stays, so
                                      stop/adopt can try again). timeout=None: the resource's.
        await agent.kill()            -> Result. A stop without grace, after a stop that failed
                                      (process: SIGKILL of its whole group, no SIGTERM; ocf:
                                      SIGKILL of its starts' process groups, then stop again,
                                      since only the script can say it stopped; dummy: at once).
        await agent.monitor()         -> Result
        await agent.adopt()           -> Result | None. After a daemon restart: find what this
                                      resource left running (its record on disk) and manage
                                      it from now on; or, if it is gone, clean up and say None.
                                      Never a duplicate, never an orphan.
        await agent.prepare_move(properties) -> "ok" | "not_now" | "reject". Asked on the
                                      source before a group move (not with IGNORE_RESOURCE_STATUS):
                                      may this running resource move now? The default derives it
                                      from monitor(): locked -> reject, not_now -> not_now.

    One instance per resource, one call at a time. start/stop/monitor/adopt are async because
    they wait on processes and sockets; adopt too, because an OCF script must be asked.

Every agent also honours a `witness` property (an absolute path; Context.witness otherwise):
it appends one JSON line {"event": "start"|"stop", "resource": id, "node", "t": monotonic,
"pid"} per start and stop, with a single O_APPEND write. A start line carries the time just
before the start began, a stop line the time after the stop was confirmed, so each
[start, stop] interval covers the whole time the resource could have been running.

The environment of a process or script: the daemon's, without its CLUSTERD_* variables,
then CLUSTERD_RESOURCE (name), CLUSTERD_RESOURCE_ID, CLUSTERD_NODE and, for each entry of
the move property list, CLUSTERD_MOVE_<key> (characters outside [A-Za-z0-9_] become _;
non-string values are JSON).
"""
import os

from . import records
from .base import (FAILED, FATAL, HARD, MOVE_NOT_NOW, MOVE_OK, MOVE_REJECT, OFFLINE, ONLINE, SOFT, Agent,
                   Context, Result)
from .dummy import DummyAgent
from .ocf import OcfAgent
from .process import ProcessAgent

AGENTS = {"process": ProcessAgent, "ocf": OcfAgent, "dummy": DummyAgent}

__all__ = ["AGENTS", "Agent", "Context", "Result", "DummyAgent", "OcfAgent", "ProcessAgent",
           "get", "create", "validate", "leftovers",
           "ONLINE", "OFFLINE", "FAILED", "SOFT", "HARD", "FATAL", "MOVE_OK", "MOVE_NOT_NOW", "MOVE_REJECT"]


def get(type_name):
    """The agent class for a resource type; KeyError if there is none."""
    return AGENTS[type_name]


def create(resource, ctx):
    """An agent for resource (its "type" picks the class)."""
    return get(resource["type"])(resource, ctx)


def validate(type_name, properties):
    """Problems with a resource of this type and these properties; [] = valid. Pure."""
    if not isinstance(type_name, str) or type_name not in AGENTS:
        return [f"unknown resource type {type_name!r} (known: {', '.join(sorted(AGENTS))})"]
    return AGENTS[type_name].validate(properties)


def privileged(type_name, properties, current=None):
    """The properties of `properties` that name a program or a path to write (the type's
    PRIVILEGED) with a value other than in `current` (the resource's properties now). Pure."""
    agent = AGENTS.get(type_name) if isinstance(type_name, str) else None
    if agent is None or not isinstance(properties, dict):
        return []
    current = current or {}
    return sorted(k for k in agent.PRIVILEGED if k in properties and properties[k] != current.get(k))


def leftovers(data_dir):
    """The resources this node may still be running, from their records on disk: a list of
    resource dicts. After a restart the executor adopts these even if they are no longer in
    the committed state (deleted or moved while the daemon was down), and stops them."""
    return [r["resource"] for r in records.all_in(os.path.join(data_dir, "resources"))
            if isinstance(r.get("resource"), dict) and r["resource"].get("type") in AGENTS]
