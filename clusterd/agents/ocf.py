"""The `ocf` agent: an OCF-style resource agent script, run as `script ACTION`.

Parameters reach the script as OCF_RESKEY_<name>, with the usual OCF variables
(OCF_ROOT, OCF_RA_VERSION_MAJOR/MINOR, OCF_RESOURCE_INSTANCE, OCF_RESOURCE_TYPE,
OCF_RESKEY_CRM_meta_timeout in ms) and the CLUSTERD_* variables every agent sets. Each action
runs in its own process group with stdout and stderr appended to data_dir/resources/<id>.log
(never a pipe: a start that leaves a daemon behind would hold a pipe open); an action past
its timeout has its whole group SIGKILLed and counts as a failure.

The script is the authority on whether the resource runs. The agent keeps a record
(data_dir/resources/<id>.json) from just before a start until a stop succeeds, so that after
a daemon restart adopt() knows to ask the script. The record also names the process group of
each start action (process.py's identity: boot id, pid, start time), which holds whatever the
start left running that did not make a session of its own. A stop that fails or times out
SIGKILLs those groups at once; a stop that succeeds SIGKILLs what is left in them (nothing
of a stopped resource may outlive its record). Neither makes a failed stop a success: only
the script says the resource is stopped (it may be an address or a mount, not a process).
"""
import asyncio
import collections
import logging
import os
import signal
import time

from .. import timing
from . import process, props
from .base import FAILED, FATAL, HARD, OFFLINE, ONLINE, SOFT, Agent, failed, offline, online

log = logging.getLogger("clusterd.agents.ocf")

DEFAULT_TIMEOUT = timing.OCF_DEFAULT_TIMEOUT
KILL_WAIT = timing.KILL_WAIT

Outcome = collections.namedtuple("Outcome", "kind code detail out", defaults=(None,))

# The OCF resource agent API's exit codes.
OCF_SUCCESS, OCF_ERR_GENERIC, OCF_ERR_ARGS, OCF_ERR_UNIMPLEMENTED = 0, 1, 2, 3
OCF_ERR_PERM, OCF_ERR_INSTALLED, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 4, 5, 6, 7
CODE_NAMES = {0: "OCF_SUCCESS", 1: "OCF_ERR_GENERIC", 2: "OCF_ERR_ARGS", 3: "OCF_ERR_UNIMPLEMENTED",
              4: "OCF_ERR_PERM", 5: "OCF_ERR_INSTALLED", 6: "OCF_ERR_CONFIGURED", 7: "OCF_NOT_RUNNING"}
# soft: try again here; hard: not on this node; fatal: nowhere until the configuration is fixed
SEVERITY = {OCF_ERR_GENERIC: SOFT, OCF_ERR_ARGS: HARD, OCF_ERR_UNIMPLEMENTED: HARD, OCF_ERR_PERM: HARD,
            OCF_ERR_INSTALLED: HARD, OCF_ERR_CONFIGURED: FATAL}


def code_name(code):
    return f"{CODE_NAMES.get(code, 'unknown exit code')} ({code})"


def classify(action, code, started):
    """An action's exit code (None: it timed out or could not run) as a Result. Pure.
    started: whether this node believes the resource was started (it has a record)."""
    if code == OCF_SUCCESS:
        return offline(f"{action}: {code_name(code)}") if action == "stop" else online(f"{action}: {code_name(code)}")
    if code == OCF_NOT_RUNNING:
        if action == "stop" or (action == "monitor" and not started):
            return offline(f"{action}: {code_name(code)}")
        return failed(SOFT, f"{action}: {code_name(code)}")
    if code is not None and code < 0:
        return failed(SOFT, f"{action}: killed by signal {-code}")
    return failed(SEVERITY.get(code, SOFT), f"{action}: {code_name(code)}")


class OcfAgent(Agent):
    TYPE = "ocf"
    PROPERTIES = frozenset({"script", "params", "timeout", "stop_timeout", "witness"})
    PRIVILEGED = frozenset({"script", "witness"})

    @classmethod
    def validate(cls, properties):
        problems = super().validate(properties)
        if problems and not isinstance(properties, dict):
            return problems
        return (problems + props.string(properties, "script", required=True, absolute=True)
                + props.string_map(properties, "params", names=props.ENV_NAME)
                + props.number(properties, "timeout", positive=True)
                + props.number(properties, "stop_timeout", positive=True))

    @property
    def timeout(self):
        return float(self.props.get("timeout", DEFAULT_TIMEOUT))

    @property
    def stop_timeout(self):
        return timing.stop_timeout(self.TYPE, self.props)

    # -- running one action -------------------------------------------------------------------
    def action_env(self, timeout):
        script = self.props["script"]
        env = self.environment()
        env.setdefault("OCF_ROOT", "/usr/lib/ocf")
        env.update({
            "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESOURCE_INSTANCE": str(self.name), "OCF_RESOURCE_TYPE": os.path.basename(script),
            "OCF_RESKEY_CRM_meta_timeout": str(int(timeout * 1000)),
        })
        for key, value in (self.props.get("params") or {}).items():
            env["OCF_RESKEY_" + key] = value
        return env

    async def run(self, action, timeout, capture=False, spawned=None):
        """Run `script action` and return an Outcome: kind "exited" (with its code), "timeout"
        (its process group was SIGKILLed) or "cannot_run" (the script could not be executed).
        spawned: awaited with the script's pid once it runs (within the timeout)."""
        script = self.props["script"]
        try:
            logfd = self.open_log()
        except OSError as e:
            return Outcome("cannot_run", None, f"{action}: cannot open its log {self.log_path}: {e.strerror or e}")
        try:
            os.write(logfd, f"--- clusterd {time.strftime('%Y-%m-%dT%H:%M:%S')} {action}\n".encode())
            proc = await asyncio.create_subprocess_exec(
                script, action, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if capture else logfd, stderr=logfd,
                env=self.action_env(timeout), start_new_session=True)
        except OSError as e:
            return Outcome("cannot_run", None, f"{action}: cannot run {script}: {e.strerror or e}")
        finally:
            os.close(logfd)
        out = None
        try:
            async with asyncio.timeout(timeout):
                if spawned is not None:
                    await spawned(proc.pid)
                if capture:
                    out, _ = await proc.communicate()
                else:
                    await proc.wait()
        except TimeoutError:
            log.warning("%s: %s %s timed out after %g s: killing its process group", self.id, script, action, timeout)
            return Outcome("timeout", None, f"{action}: timed out after {timeout:g} s")
        finally:
            if proc.returncode is None:  # timed out, or we were cancelled: leave nothing behind
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_WAIT)
                except (TimeoutError, asyncio.CancelledError):
                    pass
        return Outcome("exited", proc.returncode, "", out)

    async def _act(self, action, timeout, started, spawned=None):
        """Run an action; return its Outcome and its Result."""
        outcome = await self.run(action, timeout, spawned=spawned)
        if outcome.kind == "exited":
            return outcome, classify(action, outcome.code, started)
        return outcome, failed(HARD if outcome.kind == "cannot_run" else SOFT, outcome.detail)

    # -- the interface ------------------------------------------------------------------------
    async def start(self):
        """Run `start`, unless this node started it already and the script says it runs (never
        a second one). A failed start runs `stop` before it returns (and says if that failed too)."""
        bad = self.invalid()
        if bad:
            return bad
        again = self.read_record() is not None
        if again:
            _, running = await self._act("monitor", self.timeout, True)
            if running.state == ONLINE:
                return running
        else:
            unwritable = await self.write_record(self.new_record(started=time.time(), groups=[]))
            if unwritable:
                return unwritable
        t0 = time.monotonic()

        async def spawned(pid):  # the script runs: it may start something from now on
            if not again:  # (a start over a recorded one continues its witness interval)
                self.witness("start", t0)
            await self._remember_group(pid)
        outcome, result = await self._act("start", self.timeout, True, spawned)
        if outcome.kind == "cannot_run" and not again:  # nothing ran
            self.remove_record()
            return result
        if result.state == ONLINE:
            return result
        stopped = await self.stop()
        if stopped.state == FAILED:
            return failed(result.severity, f"{result.detail}; and stop after it: {stopped.detail}")
        return result

    async def _remember_group(self, pid):
        """Add the process group of a start action to the record (dropping groups now empty)."""
        rec = self.read_record() or self.new_record(started=time.time())
        ident = process.identity(pid) or {"pid": pid, "pgid": pid, "boot_id": process.boot_id(), "start_ticks": None}
        rec["groups"] = [g for g in rec.get("groups") or () if not process.group_gone(g)] + [ident]
        await self.write_record(rec)

    async def _kill_groups(self, rec, wait=KILL_WAIT):
        """SIGKILL the process groups of the recorded starts; True when nothing of them is left."""
        return await process.kill_groups((rec or {}).get("groups") or (), wait)

    async def stop(self, timeout=None):
        """Run `stop` (always: stopping what is not running is a success in OCF), then SIGKILL
        what the starts left in their process groups: after the stop if it failed or timed out
        (within the stop bound: timeout + KILL_WAIT), else what is still there. The record, and
        with it the witness stop line, goes only when the script confirmed and the groups are
        gone."""
        timeout = self.stop_timeout if timeout is None else float(timeout)
        bound = time.monotonic() + timeout + KILL_WAIT  # (the action's own kill wait counts in it)
        rec = self.read_record()
        outcome, result = await self._act("stop", timeout, rec is not None)
        if outcome.kind == "cannot_run" and rec is None:
            return offline("not started here, and the script cannot run")
        if rec is None:
            return result
        killed = await self._kill_groups(rec, max(0.0, bound - time.monotonic()))
        if result.state != OFFLINE:
            return failed(result.severity or SOFT, f"{result.detail}; SIGKILL of its starts' process groups "
                                                   + ("done" if killed else "left processes running"))
        if not killed:
            return failed(HARD, "stopped, but processes of its start survive SIGKILL")
        self.witness("stop", time.monotonic())
        self.remove_record()
        return result

    async def kill(self):
        """After a stop that failed: SIGKILL the process groups of its starts at once, then ask
        the script to stop (it is the authority on whether the resource runs)."""
        await self._kill_groups(self.read_record())
        return await self.stop()

    async def monitor(self):
        """Run `monitor`: OCF_NOT_RUNNING is offline, unless this node started the resource
        (then it is a failure)."""
        _, result = await self._act("monitor", self.timeout, self.read_record() is not None)
        return result

    async def adopt(self):
        """With a record from an earlier daemon: ask the script. Running: report it. Not
        running: kill what its starts left in their process groups, drop the record and return
        None. Anything else: the failure (the executor stops it)."""
        rec = self.read_record()
        if rec is None:
            return None
        outcome, result = await self._act("monitor", self.timeout, True)
        if outcome.kind == "exited" and outcome.code == OCF_NOT_RUNNING:
            if not await self._kill_groups(rec):
                return failed(HARD, "not running, but processes of its start survive SIGKILL")
            self.witness("stop", time.monotonic())
            self.remove_record()
            return None
        return result

    async def meta_data(self):
        """The script's meta-data XML (a string), or None if it could not give it."""
        outcome = await self.run("meta-data", self.timeout, capture=True)
        if outcome.kind != "exited" or outcome.code != OCF_SUCCESS:
            log.warning("%s: meta-data: %s", self.id, outcome.detail or code_name(outcome.code))
            return None
        return outcome.out.decode("utf-8", "replace")
