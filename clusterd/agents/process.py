"""The `process` agent: a command run as a supervised child of the daemon.

The command runs in its own session (so its own process group, whose id is its pid): a
daemon that crashes or restarts does not take it down, and a stop signals the whole group.
Output is appended to data_dir/resources/<id>.log.

Identity. A pid alone can be reused, so the record data_dir/resources/<id>.json names the
process by (boot id, pid, start time in clock ticks since boot, read from /proc/<pid>/stat).
That is what psutil's create_time is made of, minus the boot time, which moves when the wall
clock is stepped; psutil's create_time is recorded too, for people. The record is written
before the spawn (with a random launch token that the child also gets in CLUSTERD_LAUNCH, so
a crash between spawn and record still finds the process) and completed right after it; it is
removed only once the whole group is confirmed gone.

Liveness. The daemon's own child is watched through a pidfd on the event loop and reaped the
moment it exits (subprocess.Popen, not asyncio's subprocess transport: that one kills its
child when it is closed or garbage collected, which would take resources down with a daemon
exit). An adopted process (left by an earlier daemon) is checked by its identity in /proc.

Rules that make this safe: a process group id cannot be reused by Linux while any process is
in that group, so the group is signalled only if the pid is ours (same identity) or belongs
to nobody; a pid that now names another process means our group is empty. Resources must not
daemonize (double fork + setsid): what leaves the group is still caught if it was a
descendant when stop began, otherwise it is not ours to find.
"""
import asyncio
import collections
import logging
import os
import signal
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import psutil

from .. import timing
from . import props, records
from .base import FAILED, HARD, ONLINE, SOFT, Agent, failed, offline, online

log = logging.getLogger("clusterd.agents.process")

DEFAULT_START_TIMEOUT = 20.0
CHECK_TIMEOUT = 1.0  # one health check (TCP connect, HTTP status line)
POLL = 0.05  # how often a stop looks whether the group is gone
KILL_WAIT = timing.KILL_WAIT  # how long SIGKILLed processes get to vanish before the stop is a failure

RUNNING, EXITED, FOREIGN = "running", "exited", "foreign"

Stat = collections.namedtuple("Stat", "state ppid pgrp start_ticks")


# -- /proc ------------------------------------------------------------------------------------
def proc_stat(pid):
    """(state, ppid, pgrp, start_ticks) of pid from /proc/<pid>/stat, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()  # fields[0] is field 3 of proc(5)
    return Stat(fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19]))


def lives(pid, st):
    """Whether the process with stat st still runs. A thread-group leader that has exited shows
    as a zombie while its other threads, which still hold its files (a listening socket), are
    being torn down: it is gone only when it is the last thread left."""
    if st.state not in ("Z", "X"):
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


_BOOT_ID = []


def boot_id():
    if not _BOOT_ID:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _BOOT_ID.append(f.read().strip())
        except OSError:
            _BOOT_ID.append("")
    return _BOOT_ID[0]


def identity(pid):
    """The identity of a live (or not yet reaped) pid, as recorded; None if it is gone."""
    st = proc_stat(pid)
    if st is None:
        return None
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        create_time = None
    return {"pid": pid, "pgid": pid, "boot_id": boot_id(), "start_ticks": st.start_ticks,
            "create_time": create_time}


def leader_state(rec):
    """RUNNING: the recorded process is alive. EXITED: it is gone (or a zombie), its pid free,
    so members of its group may remain. FOREIGN: the pid is another process now, or the record
    is from another boot: nothing of ours is left and nothing may be signalled."""
    if rec.get("boot_id") != boot_id():
        return FOREIGN
    st = proc_stat(rec["pid"])
    if st is None:
        return EXITED
    if st.start_ticks != rec["start_ticks"]:
        return FOREIGN
    return RUNNING if lives(rec["pid"], st) else EXITED


def group_members(pgid):
    """Live processes (not zombies) in process group pgid."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members = []
    for pid in psutil.pids():
        st = proc_stat(pid)
        if st is not None and st.pgrp == pgid and lives(pid, st):
            members.append(pid)
    return members


def group_gone(rec):
    """Nothing of the process group that rec names (pid, pgid, boot_id, start_ticks) runs."""
    state = leader_state(rec)
    return state == FOREIGN or (state == EXITED and not group_members(rec["pgid"]))


def signal_group(rec, sig):
    """Signal the process group rec names, unless its pid now names another process (then the
    group is empty, and the pgid may be someone else's)."""
    if leader_state(rec) != FOREIGN:
        try:
            os.killpg(rec["pgid"], sig)
        except (ProcessLookupError, PermissionError):
            pass


async def kill_groups(recs, wait=KILL_WAIT):
    """SIGKILL every process group that recs name, at once; True when all are gone within wait."""
    left = [r for r in recs if not group_gone(r)]
    for r in left:
        signal_group(r, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while left:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL)
        left = [r for r in left if not group_gone(r)]
    return True


def launched(token):
    """Session leaders whose environment carries CLUSTERD_LAUNCH=token."""
    found = []
    if not token:
        return found
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == p.pid and p.environ().get("CLUSTERD_LAUNCH") == token:
                found.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return found


def alive(p):
    """Whether psutil.Process p still runs (is_running() also checks its pid was not reused)."""
    try:
        if not p.is_running():
            return False
    except psutil.Error:
        return False
    st = proc_stat(p.pid)
    return st is not None and lives(p.pid, st)


# -- health checks ----------------------------------------------------------------------------
async def tcp_answers(address, timeout=CHECK_TIMEOUT):
    host, port = props.split_host_port(address)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
            sock = writer.get_extra_info("socket")
            self_connected = sock.getsockname() == sock.getpeername()
            writer.close()
            await writer.wait_closed()
    except (OSError, TimeoutError) as e:
        return False, f"{address} does not accept connections ({e.__class__.__name__})"
    if self_connected:  # TCP connected a socket to itself: nothing listens on that port
        return False, f"{address} does not accept connections (nothing listens)"
    return True, ""


async def http_answers(url, timeout=CHECK_TIMEOUT):
    """GET url (HTTP/1.0); healthy on a 2xx or 3xx status."""
    u = urlsplit(url)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(u.hostname, u.port or 80)
            try:
                writer.write(f"GET {target} HTTP/1.0\r\nHost: {u.netloc}\r\nConnection: close\r\n\r\n".encode())
                await writer.drain()
                status = await reader.readline()
            finally:
                writer.close()
        code = int(status.split()[1])
    except (OSError, TimeoutError) as e:
        return False, f"{url} does not answer ({e.__class__.__name__})"
    except (ValueError, IndexError):
        return False, f"{url} answered something that is not HTTP"
    if 200 <= code < 400:
        return True, ""
    return False, f"{url} answered HTTP {code}"


# -- the agent --------------------------------------------------------------------------------
class ProcessAgent(Agent):
    TYPE = "process"
    PROPERTIES = frozenset({"args", "cwd", "env", "check_tcp", "check_http", "stop_timeout",
                            "start_timeout", "witness"})
    PRIVILEGED = frozenset({"args", "cwd", "env", "witness"})  # env: PATH, LD_PRELOAD; cwd: a relative args[0]

    def __init__(self, resource, ctx):
        super().__init__(resource, ctx)
        self.popen = None  # the child this instance started (None for an adopted process)
        self.rec = None  # the record of what runs, once known

    @classmethod
    def validate(cls, properties):
        problems = super().validate(properties)
        if problems and not isinstance(properties, dict):
            return problems
        return (problems + props.string_list(properties, "args", required=True)
                + props.string(properties, "cwd")
                + props.string_map(properties, "env", names=props.ENV_NAME)
                + props.loopback_tcp(properties, "check_tcp")
                + props.loopback_http(properties, "check_http")
                + props.number(properties, "stop_timeout", positive=True)
                + props.number(properties, "start_timeout", positive=True))

    @property
    def stop_timeout(self):
        return timing.stop_timeout(self.TYPE, self.props)

    # -- start --------------------------------------------------------------------------------
    async def start(self):
        """Spawn the command and wait (up to start_timeout) until it is healthy. Idempotent: if
        the resource already runs, report it; never start a second one. A start that fails has
        already stopped what it spawned."""
        bad = self.invalid()
        if bad:
            return bad
        rec = self._load()
        if rec is not None:
            if leader_state(rec) == RUNNING:
                return await self._check(rec)
            leftovers = await self.stop()  # a run that died: clean up before starting again
            if leftovers.state == FAILED:
                return leftovers
        token = uuid.uuid4().hex
        unwritable = await self.write_record(self.new_record(launch=token))
        if unwritable:
            return unwritable
        t0 = time.monotonic()
        try:
            popen = self._spawn(token)
        except OSError as e:
            self.remove_record()
            hard = isinstance(e, (FileNotFoundError, PermissionError, NotADirectoryError))
            where = f" ({e.filename})" if e.filename else ""
            return failed(HARD if hard else SOFT, f"cannot start {self.props['args'][0]}: {e.strerror or e}{where}")
        self.popen = popen
        ident = identity(popen.pid)  # our unreaped child: /proc/<pid> is there even if it exited
        if ident is None:  # someone else reaped it: it is gone
            self.remove_record()
            return failed(SOFT, f"process {popen.pid} exited at once")
        self.rec = self.new_record(launch=token, args=self.props["args"], **ident)
        self.witness("start", t0, popen.pid)  # before the await: a cancelled start has it too
        self._watch(popen)
        unwritable = await self.write_record(self.rec)
        if unwritable:  # it runs, but its identity is not on disk: do not keep it
            stopped = await self.stop()
            return unwritable if stopped.state != FAILED else stopped

        deadline = time.monotonic() + float(self.props.get("start_timeout", DEFAULT_START_TIMEOUT))
        while True:
            result = await self._check(self.rec)
            if result.state == ONLINE:
                return result
            if leader_state(self.rec) != RUNNING or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)
        stopped = await self.stop()
        detail = f"start failed: {result.detail}"
        if stopped.state == FAILED:
            detail += f"; and the stop after it failed: {stopped.detail}"
        return failed(stopped.severity or SOFT, detail, popen.pid)

    def _spawn(self, token):
        env = self.environment(self.props.get("env"))
        env["CLUSTERD_LAUNCH"] = token
        logfd = self.open_log()
        try:
            return subprocess.Popen(
                self.props["args"], cwd=self.props.get("cwd"), env=env, stdin=subprocess.DEVNULL,
                stdout=logfd, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        finally:
            os.close(logfd)

    def _watch(self, popen):
        """Reap the child as soon as it exits: a pidfd becomes readable then."""
        try:
            fd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            return  # no pidfd: monitor() and stop() reap instead
        loop = asyncio.get_running_loop()

        def exited():
            if popen.poll() is not None:
                loop.remove_reader(fd)
                os.close(fd)

        loop.add_reader(fd, exited)

    # -- monitor ------------------------------------------------------------------------------
    async def monitor(self):
        """online while the recorded process lives (same identity) and its checks pass."""
        rec = self._load()
        if rec is None:
            return offline("not running")
        self._reap()
        return await self._check(rec)

    async def _check(self, rec):
        pid = rec["pid"]
        if leader_state(rec) != RUNNING:
            return failed(SOFT, f"process {pid} {self._exit_status()}", pid)
        if "check_tcp" in self.props:
            ok, why = await tcp_answers(self.props["check_tcp"])
            if not ok:
                return failed(SOFT, why, pid)
        if "check_http" in self.props:
            ok, why = await http_answers(self.props["check_http"])
            if not ok:
                return failed(SOFT, why, pid)
        return online(f"process {pid} running", pid)

    def _exit_status(self):
        code = self.popen.returncode if self.popen is not None else None
        if code is None:
            return "is gone"
        return f"exited with code {code}" if code >= 0 else f"was killed by signal {-code}"

    # -- stop ---------------------------------------------------------------------------------
    async def stop(self, timeout=None):
        """SIGTERM the process group, SIGKILL it after timeout (default: the stop_timeout
        property; 0: SIGKILL at once, no SIGTERM), and return only when nothing of it runs. A
        failed stop keeps the record."""
        timeout = self.stop_timeout if timeout is None else float(timeout)
        rec = self._load()
        if rec is None:
            return offline("not running")
        pid = rec["pid"]
        how = await self._terminate(rec, timeout)
        if how is None:
            return failed(HARD, f"process group {pid} is still running after SIGKILL", pid)
        self.witness("stop", time.monotonic(), pid)
        self._forget()
        return offline(how, pid)

    async def _terminate(self, rec, timeout):
        """How the group ended, or None if it would not."""
        state = leader_state(rec)
        if state == FOREIGN:
            return "already gone (its pid now names another process)"
        extra = []  # the process and its descendants, signalled by pid too: some may have left the group
        if state == RUNNING:
            try:
                leader = psutil.Process(rec["pid"])
                extra = [leader, *leader.children(recursive=True)]
            except psutil.Error:
                pass
        if self._gone(rec, extra):
            return f"already gone ({self._exit_status()})"
        if timeout > 0:  # (no timeout: a kill, no SIGTERM first)
            self._signal(rec, extra, signal.SIGTERM)
            if await self._wait_gone(rec, extra, timeout):
                return "stopped by SIGTERM"
            log.warning("%s: process group %s ignored SIGTERM for %g s: SIGKILL", self.id, rec["pgid"], timeout)
        self._signal(rec, extra, signal.SIGKILL)
        if await self._wait_gone(rec, extra, KILL_WAIT):
            return f"killed by SIGKILL after {timeout:g} s" if timeout > 0 else "killed by SIGKILL"
        return None

    def _signal(self, rec, extra, sig):
        signal_group(rec, sig)
        for p in extra:
            try:
                p.send_signal(sig)  # psutil refuses if the pid was reused meanwhile
            except psutil.Error:
                pass

    def _gone(self, rec, extra):
        self._reap()
        return (leader_state(rec) != RUNNING and not group_members(rec["pgid"])
                and not any(alive(p) for p in extra))

    async def _wait_gone(self, rec, extra, timeout):
        deadline = time.monotonic() + timeout
        while not self._gone(rec, extra):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL)
        return True

    def _reap(self):
        """Collect our exited child, so it does not stay a zombie."""
        if self.popen is not None:
            self.popen.poll()
            return
        rec = self.rec
        if rec is None or rec.get("boot_id") != boot_id():
            return
        st = proc_stat(rec["pid"])
        if st and st.state == "Z" and st.ppid == os.getpid() and st.start_ticks == rec["start_ticks"]:
            try:
                os.waitpid(rec["pid"], os.WNOHANG)
            except ChildProcessError:
                pass

    # -- after a daemon restart -----------------------------------------------------------------
    async def adopt(self):
        """Find what an earlier daemon left running for this resource. Alive (same identity):
        report it (its checks included) and manage it from now on. Dead: kill what is left of
        its group, write the witness stop line, drop the record, and return None."""
        rec = self._load()
        if rec is None:
            return None
        if leader_state(rec) == RUNNING:
            return await self._check(rec)
        how = await self._terminate(rec, self.stop_timeout)
        if how is None:
            return failed(HARD, f"leftovers of process {rec['pid']} are still running after SIGKILL", rec["pid"])
        log.info("%s: dropped the stale record of process %s (%s)", self.id, rec["pid"], how)
        self.witness("stop", time.monotonic(), rec["pid"])
        self._forget()
        return None

    def _load(self):
        """The record of what this resource runs (from memory, else from disk), or None."""
        if self.rec is not None:
            return self.rec
        rec = self.read_record()
        if rec is None:
            return None
        if "pid" not in rec:  # written before a spawn whose pid was never recorded
            pids = launched(rec.get("launch"))
            ident = identity(pids[0]) if pids else None
            if ident is None:
                self.remove_record()
                return None
            rec.update(ident)
            records.write(self.record_path, rec)  # in line: this path runs once, after a crash
        self.rec = rec
        return rec

    def _forget(self):
        self._reap()
        self.remove_record()
        self.rec = None
        self.popen = None
