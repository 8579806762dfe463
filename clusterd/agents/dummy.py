"""The `dummy` agent, for tests and demos: a resource that is nothing but its state file.

It is online while data_dir/resources/<id>.json exists; the file records the node, the time
and the move property list it was started with (tests read "move_properties" from it).
Like a real resource it outlives a daemon restart: adopt() finds the file and reports it.

Behaviour to inject, each a property (fixed) or a file (read at every call, so a test can
change it while the cluster runs). A flag property is true/false or a list of node names (true
on those nodes only); a flag file counts when it exists, and if it holds node names
(whitespace separated), only on those nodes.

  start_delay, stop_delay   seconds that start / stop take (a stop is cut at its timeout:
                            timing.stop_timeout, the one the fence delay counts)
  fail_start, fail_start_file   start fails (soft), and nothing is left running
  fail_monitor, fail_file   monitor reports a failure (soft)
  locked, lock_file         the resource is locked in its state on this node (Result.locked)
  not_now, not_now_file     a move is not possible now, maybe soon (Result.not_now)
  reject_move, reject_move_file   prepare_move rejects the move (the resource stays)
  crash, crash_file         every call raises (an agent bug: the executor must not lose track)
"""
import asyncio
import time

from .. import timing
from . import props
from .base import MOVE_REJECT, SOFT, Agent, failed, offline, online

FLAGS = {"fail_start": "fail_start_file", "fail_monitor": "fail_file", "locked": "lock_file",
         "not_now": "not_now_file", "reject_move": "reject_move_file", "crash": "crash_file"}


class DummyAgent(Agent):
    TYPE = "dummy"
    PROPERTIES = frozenset({"start_delay", "stop_delay", "witness", *FLAGS, *FLAGS.values()})

    def __init__(self, resource, ctx):
        super().__init__(resource, ctx)
        self.started = False  # this instance started or adopted it (a vanished file is a failure)

    @classmethod
    def validate(cls, properties):
        problems = super().validate(properties)
        if problems and not isinstance(properties, dict):
            return problems
        for key, file_key in FLAGS.items():
            problems += props.flag(properties, key) + props.string(properties, file_key, absolute=True)
        return (problems + props.number(properties, "start_delay")
                + props.number(properties, "stop_delay"))

    def flag(self, key):
        """Whether an injected behaviour is on, for this node, right now."""
        node = self.ctx.node
        value = self.props.get(key, False)
        if value is True or (isinstance(value, list) and node in value):
            return True
        path = self.props.get(FLAGS[key])
        if not path:
            return False
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                names = f.read().split()
        except OSError:
            return False
        return not names or node in names

    def crash(self):
        if self.flag("crash"):
            raise RuntimeError(f"dummy {self.id}: injected crash")

    def status(self, detail):
        not_now = self.flag("not_now")
        if not_now:
            detail += "; a move is not possible now"
        return online(detail, locked=self.flag("locked"), not_now=not_now)

    async def start(self):
        bad = self.invalid()
        if bad:
            return bad
        self.crash()
        if self.read_record() is not None:
            self.started = True
            return self.status("already running")
        t0 = time.monotonic()
        await asyncio.sleep(float(self.props.get("start_delay", 0)))
        if self.flag("fail_start"):
            return failed(SOFT, "injected start failure")
        try:
            unwritable = await self.write_record(self.new_record(
                state="online", started=time.time(), move_properties=dict(self.ctx.move_properties or {})))
        except asyncio.CancelledError:  # write_record ended its write first: the state file is there
            self.witness("start", t0)
            raise
        if unwritable:
            return unwritable
        self.started = True
        self.witness("start", t0)
        return self.status("started")

    async def monitor(self):
        self.crash()
        if self.read_record() is None:
            return failed(SOFT, "its state file is gone") if self.started else offline("not running")
        if self.flag("fail_monitor"):
            return failed(SOFT, "injected monitor failure")
        return self.status("running")

    async def stop(self, timeout=None):
        self.crash()
        self.started = False
        if self.read_record() is None:
            return offline("not running")
        delay = float(self.props.get("stop_delay", 0))
        timeout = timing.stop_timeout(self.TYPE, self.props) if timeout is None else float(timeout)
        cut = delay > timeout
        await asyncio.sleep(float(timeout) if cut else delay)
        self.remove_record()
        self.witness("stop", time.monotonic())
        return offline(f"stop_delay {delay:g} s passed the {timeout:g} s stop timeout: stopped hard" if cut else "stopped")

    async def prepare_move(self, properties):
        self.crash()
        if self.read_record() is not None and self.flag("reject_move"):
            return MOVE_REJECT
        return await super().prepare_move(properties)

    async def adopt(self):
        if self.read_record() is None:
            return None
        self.started = True
        return await self.monitor()
