"""The agent interface (see clusterd/agents/__init__.py) and what every agent shares: its
record and log under data_dir/resources/, the environment it gives a resource, the witness."""
import asyncio
import dataclasses
import json
import logging
import os
import re

from . import props, records

log = logging.getLogger("clusterd.agents")

ONLINE, OFFLINE, FAILED = "online", "offline", "failed"
SOFT, HARD, FATAL = "soft", "hard", "fatal"
MOVE_OK, MOVE_NOT_NOW, MOVE_REJECT = "ok", "not_now", "reject"  # prepare_move's answers


@dataclasses.dataclass
class Context:
    """What the executor hands an agent."""
    node: str  # this node's name
    data_dir: str  # the node's data dir; agents keep their files under data_dir/resources/
    witness: str | None = None  # a shared file that gets one JSON line per start and stop
    move_properties: dict = dataclasses.field(default_factory=dict)  # delivered with a group move

    @property
    def resources_dir(self):
        return os.path.join(self.data_dir, "resources")


@dataclasses.dataclass(frozen=True)
class Result:
    """What an action found. severity is set only when state is "failed"."""
    state: str  # "online" | "offline" | "failed"
    locked: bool = False  # the resource asks to stay on this node (a move needs IGNORE_RESOURCE_STATUS)
    pid: int | None = None  # the main process, when the agent knows one
    detail: str = ""
    severity: str | None = None  # None | "soft" | "hard" | "fatal"
    not_now: bool = False  # the resource says a move is not possible now, but may be soon

    def to_dict(self):
        return dataclasses.asdict(self)


def online(detail="", pid=None, locked=False, not_now=False):
    return Result(ONLINE, locked=locked, pid=pid, detail=detail, not_now=not_now)


def offline(detail="", pid=None):
    return Result(OFFLINE, pid=pid, detail=detail)


def failed(severity, detail, pid=None):
    assert severity in (SOFT, HARD, FATAL), severity
    return Result(FAILED, pid=pid, detail=detail, severity=severity)


def safe_id(resource_id):
    """A resource id names files: it must be one path component."""
    if (not isinstance(resource_id, str) or not resource_id or resource_id in (".", "..")
            or "/" in resource_id or "\0" in resource_id):
        raise ValueError(f"resource id {resource_id!r} cannot name a file")
    return resource_id


def env_name(key):
    """A move property name as an environment variable suffix: other characters become _."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(key))


def env_value(value):
    return value if isinstance(value, str) else json.dumps(value)


class Agent:
    """Base class: one instance per resource, used by one caller at a time."""
    TYPE = None
    PROPERTIES = frozenset({"witness"})
    # the properties that name a program to run, what it runs with, or a path to write:
    # setting one to a new value is pool-admin's (group_methods.py, docs/security.md)
    PRIVILEGED = frozenset({"witness"})

    def __init__(self, resource, ctx):
        self.resource = resource
        self.ctx = ctx
        self.id = safe_id(resource["id"])
        self.name = resource.get("name") or self.id
        self.props = resource.get("properties") or {}

    # -- the interface ------------------------------------------------------------------------
    @classmethod
    def validate(cls, properties):
        """Problems with these properties (strings); [] means valid. Pure: no I/O."""
        return props.common(properties, cls.PROPERTIES) or props.string(properties, "witness", absolute=True)

    async def start(self):
        raise NotImplementedError

    async def stop(self, timeout=None):
        raise NotImplementedError

    async def kill(self):
        """After a stop that failed: stop at once, without a grace period (stop with timeout 0:
        the process agent SIGKILLs the whole process group, the dummy drops its file). Same
        Result as stop(); offline only once nothing of the resource runs."""
        return await self.stop(timeout=0)

    async def monitor(self):
        raise NotImplementedError

    async def adopt(self):
        raise NotImplementedError

    async def prepare_move(self, properties):
        """May this running resource move now? "ok", "not_now" (maybe soon: a queued move asks
        again) or "reject" (it stays). From its monitor: locked -> reject, not_now -> not_now.
        Only asked without CLUSAPI_GROUP_MOVE_IGNORE_RESOURCE_STATUS; properties is the move's
        property list."""
        result = await self.monitor()
        if result.state != ONLINE:
            return MOVE_OK  # not running: nothing holds it here
        return MOVE_REJECT if result.locked else MOVE_NOT_NOW if result.not_now else MOVE_OK

    # -- shared pieces ------------------------------------------------------------------------
    @property
    def record_path(self):
        return os.path.join(self.ctx.resources_dir, self.id + records.SUFFIX)

    @property
    def log_path(self):
        return os.path.join(self.ctx.resources_dir, self.id + ".log")

    def invalid(self):
        """A fatal Result if this resource's properties are invalid, else None."""
        problems = self.validate(self.props)
        return failed(FATAL, "invalid properties: " + "; ".join(problems)) if problems else None

    def read_record(self):
        return records.read(self.record_path)

    async def write_record(self, data):
        """Write this resource's record off the event loop (it fsyncs). Returns a failed
        Result if it could not (the node cannot keep track of the resource), else None."""
        write = asyncio.ensure_future(asyncio.to_thread(records.write, self.record_path, data))
        try:
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:  # the write goes on in its thread: let it end first, so a
                await write  # stop that follows cannot be overtaken by it (a record of nothing)
                raise
        except OSError as e:
            log.error("%s: cannot write %s: %s", self.id, self.record_path, e)
            return failed(HARD, f"cannot write its record {self.record_path}: {e.strerror or e}")
        return None

    def remove_record(self):
        records.remove(self.record_path)

    def new_record(self, **fields):
        """A record names the resource in full, so a node can stop what it left running even
        after the resource was deleted from the cluster database (see agents.leftovers())."""
        return {"type": self.TYPE, "node": self.ctx.node, "resource": self.resource, **fields}

    def open_log(self):
        """This resource's log, opened for appending (the caller closes the fd)."""
        os.makedirs(self.ctx.resources_dir, exist_ok=True)
        return os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def environment(self, own=None):
        """The daemon's environment without its CLUSTERD_* variables, then the resource's own
        variables, then ours (which win): who it is, where, and the move's property list."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERD_")}
        env.update(own or {})
        env["CLUSTERD_RESOURCE"] = str(self.name)
        env["CLUSTERD_RESOURCE_ID"] = self.id
        env["CLUSTERD_NODE"] = str(self.ctx.node)
        for key, value in (self.ctx.move_properties or {}).items():
            env["CLUSTERD_MOVE_" + env_name(key)] = env_value(value)
        return env

    def witness(self, event, t, pid=None):
        """Append {"event", "resource", "node", "t", "pid"} to the witness file, if there is one.
        t is time.monotonic() (one clock: the witness is for nodes on one host). Returns an
        error string or None; an error is also logged."""
        path = self.props.get("witness") or self.ctx.witness
        if not path:
            return None
        err = records.append_line(path, {"event": event, "resource": self.id, "node": self.ctx.node,
                                         "t": t, "pid": pid})
        if err:
            log.error("%s: %s", self.id, err)
        return err
