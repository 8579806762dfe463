"""The keeper: the watchdog behind the default `watchdog` fence (docs/keeper.md).

The watchdog fence lets the leader restart a lost node's groups elsewhere once the node's
lease and its stop bound have passed (docs/timing.md), trusting that the node stopped them.
A daemon that is killed (the OOM killer), paused (SIGSTOP) or hung cannot; its keeper does.
One small process per node, in its own session, started by the daemon (`Link.attach`) and
outliving it; a restarted daemon re-attaches to it instead of starting a second.

Between them, files in DATA/keeper/, no sockets:
  lock        the keeper holds an exclusive flock on it while it runs (one keeper per data dir)
  lease.json  written by the daemon at every executor step: {"deadline": the lease deadline,
              "written": when, "daemon": pid, "daemon_ctime": its create time, "exit": false}.
              Both are time.monotonic() instants: CLOCK_MONOTONIC is one clock for the whole
              host on Linux, so the keeper compares them with its own.
  keeper.log  the keeper's log

The keeper looks every POLL seconds. When the lease has run out and the daemon has written
nothing for REACTION (it stopped renewing: `fire_at`), it stops every resource that the agents'
records (DATA/resources/*.json) say may still run, all at once: the agents' own stop, SIGTERM
of the process group and SIGKILL past its stop timeout. So every resource is gone within
lease + REACTION + its stop bound, inside the fence delay. A live daemon keeps writing and
stops its resources itself; the keeper leaves it alone. The keeper exits once nothing is
recorded and its daemon is gone or said it exits (a clean SIGTERM has stopped everything).
"""
import asyncio
import fcntl
import json
import logging
import os
import subprocess
import sys
import time

import psutil

from . import agents, timing
from .agents import records

log = logging.getLogger("clusterd.keeper")

POLL = 0.1  # seconds between the keeper's looks (well within REACTION)
STALE = timing.REACTION  # a daemon silent for this long past its deadline has stopped renewing
CHECK = 1.0  # how often the daemon checks that its keeper still runs
SPAWN_WAIT = 10.0  # seconds the daemon waits for a new keeper to take its lock


def keeper_dir(data_dir):
    return os.path.join(data_dir, "keeper")


def fire_at(lease):
    """Pure: the monotonic instant from which the keeper stops everything, given the last lease
    file (None: never written, so at once)."""
    if not lease:
        return float("-inf")
    return max(float(lease.get("deadline", 0.0)), float(lease.get("written", 0.0)) + STALE)


def read_lease(data_dir):
    data = records.read(os.path.join(keeper_dir(data_dir), "lease.json"))
    return data if isinstance(data, dict) else None


def running(data_dir):
    """Whether a keeper holds the lock of this data dir."""
    os.makedirs(keeper_dir(data_dir), exist_ok=True)
    with open(os.path.join(keeper_dir(data_dir), "lock"), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


# -- the daemon's end -------------------------------------------------------------------------
class Link:
    """The daemon's end: hands the keeper its lease deadline, restarts it if it is gone."""

    def __init__(self, data_dir, node):
        self.data_dir, self.node = data_dir, node
        os.makedirs(keeper_dir(data_dir), exist_ok=True)
        lease = read_lease(data_dir)
        # what the previous daemon held: adopted resources may be kept until then, not longer
        self.inherited = float(lease.get("deadline", 0.0)) if lease and not lease.get("exit") else 0.0
        self.me = psutil.Process()
        self.popen = None
        self._checked = float("-inf")

    @classmethod
    async def attach(cls, data_dir, node):
        link = cls(data_dir, node)
        link.renew(link.inherited)
        await link.ensure()
        return link

    async def ensure(self):
        """Start a keeper unless one runs (then re-attach: it reads the file this daemon writes)."""
        if self.popen is not None:
            self.popen.poll()  # reap an earlier one that exited
        if running(self.data_dir):
            return
        logfd = os.open(os.path.join(keeper_dir(self.data_dir), "keeper.log"),
                        os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERD_")}
            self.popen = subprocess.Popen([sys.executable, "-m", "clusterd.keeper", self.data_dir, self.node],
                                          stdin=subprocess.DEVNULL, stdout=logfd, stderr=subprocess.STDOUT,
                                          start_new_session=True, close_fds=True, env=env)
        finally:
            os.close(logfd)
        deadline = time.monotonic() + SPAWN_WAIT
        while not running(self.data_dir) and time.monotonic() < deadline and self.popen.poll() is None:
            await asyncio.sleep(0.02)
        if running(self.data_dir):
            log.info("started keeper %s for %s", self.popen.pid, self.data_dir)
        else:
            log.error("the keeper did not start (see %s)", os.path.join(keeper_dir(self.data_dir), "keeper.log"))

    def renew(self, deadline, exiting=False):
        """Write the lease deadline (and that this daemon lives). Never raises: a daemon that
        cannot write it looks silent to its keeper, which then stops the resources: safe."""
        data = {"deadline": float(deadline), "written": time.monotonic(), "daemon": self.me.pid,
                "daemon_ctime": self.me.create_time(), "exit": exiting}
        path = os.path.join(keeper_dir(self.data_dir), "lease.json")
        tmp = path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError as e:
            log.error("cannot write %s: %s", path, e)

    async def check(self):
        """Now and then: a keeper that is gone (killed, or exited just as this daemon attached)
        is started again."""
        now = time.monotonic()
        if now - self._checked >= CHECK:
            self._checked = now
            await self.ensure()

    def release(self):
        """The daemon exits cleanly, having stopped everything: the keeper may exit too."""
        self.renew(0.0, exiting=True)


# -- the keeper -------------------------------------------------------------------------------
def daemon_gone(lease):
    if not lease or lease.get("exit"):
        return True
    try:
        daemon = psutil.Process(int(lease["daemon"]))
        return daemon.create_time() != lease.get("daemon_ctime") or daemon.status() == psutil.STATUS_ZOMBIE
    except (psutil.Error, KeyError, TypeError, ValueError):
        return True


async def stop_everything(data_dir, node):
    """Stop every recorded resource, side by side, each with its agent's stop (SIGKILL past its
    stop timeout). Returns what could not be stopped (a stop that raised included: one agent's
    bug must not end the keeper, which alone stops the others)."""
    leftovers = agents.leftovers(data_dir)
    log.warning("the daemon stopped renewing its lease: stopping %d resources", len(leftovers))
    results = await asyncio.gather(*(agents.create(r, agents.Context(node=node, data_dir=data_dir)).stop()
                                     for r in leftovers), return_exceptions=True)
    left = []
    for r, res in zip(leftovers, results):
        if isinstance(res, Exception):
            log.error("stop of %s raised %r", r.get("name"), res)
        if isinstance(res, BaseException) or res.state != agents.OFFLINE:
            left.append(r.get("name"))
    if left:
        log.error("could not stop %s; trying again", left)
    return left


async def keep(data_dir, node):
    while True:
        lease = read_lease(data_dir)
        recorded = agents.leftovers(data_dir)
        if recorded and time.monotonic() >= fire_at(lease):
            if await stop_everything(data_dir, node):
                await asyncio.sleep(POLL)  # (a stop that fails at once is not retried in a spin)
            continue
        if not recorded and daemon_gone(lease):
            log.info("nothing recorded and the daemon is gone: the keeper exits")
            return
        await asyncio.sleep(POLL)


def _spare_from_the_oom_killer():
    """The keeper is small; the OOM killer should take anything else first (needs root)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-1000")
    except OSError as e:
        log.info("oom_score_adj not set: %s", e.strerror or e)


def main(argv=None):
    data_dir, node = (argv or sys.argv[1:])[:2]
    logging.basicConfig(level="INFO", format=f"%(asctime)s {node} %(name)s %(levelname)s %(message)s")
    os.makedirs(keeper_dir(data_dir), exist_ok=True)
    with open(os.path.join(keeper_dir(data_dir), "lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("a keeper already runs for %s", data_dir)
            return 0
        log.info("keeper %s for %s", os.getpid(), data_dir)
        _spare_from_the_oom_killer()
        asyncio.run(keep(data_dir, node))
    return 0


if __name__ == "__main__":
    sys.exit(main())
