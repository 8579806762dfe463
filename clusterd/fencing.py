"""Fence agents: how the coordinator makes sure a lost node runs nothing any more.

Each agent is `async def agent(fencer, down) -> (fenced: bool, detail: str)`; the coordinator
commits the request before and the result after (failover.py), and never counts a fence of
a node it hears again. The agents:

- `watchdog`: wait `timing.fence_delay` (the lease, the node's slowest group's whole stop, a
  margin, stretched for clock drift) from `lease.fence_clock_start`: this leader's last grant
  of a lease to the node, or its own election if later. By then the node has stopped its
  resources itself, because its lease ran out (docs/timing.md has the proof).
- `process` (same host): kill the node's daemon and its resource processes by pid and
  create time, then stop whatever its agents' records (in its data dir) say may still run,
  as its own executor would with no grace time; confirm that all of it is gone. The records
  find a resource whose pid never reached the database (started just before the cut).
- `script`: an external fence command, run as fence agents are (the FenceAgentAPI that
  fenced and Pacemaker use): one `name=value` per line on stdin — action=off, plug and
  nodename = the node's name, then the configured fence_options — and exit status 0 means
  the node is fenced. Anything else, or no answer within fence_timeout, is a failed fence.
"""
import asyncio
import os
import signal
import time

import psutil

from . import agents, timing
from .agents import records

OUTPUT_KEPT = 400  # characters of a fence script's output kept in the fence record


class Fencer:
    """Runs the configured fence agent for the coordinator of `node`."""

    def __init__(self, node, started):
        self.node = node
        self.started = started  # when this leader's coordinator started (the watchdog reads its clock start from membership)
        self.live = set()  # nodes fenced although live: sources that did not hand over (decide.py)

    async def fence(self, down, live=False):
        if live:
            self.live.add(down)
        try:
            return await AGENTS[self.node.cfg.fence_agent](self, down)
        finally:
            self.live.discard(down)

    def heard_again(self, down):
        """The node is talking again (its suspicion was wrong, e.g. a stall under load); a live
        node fenced for not handing over is heard all along, and that does not end its fence."""
        return down not in self.live and down in self.node.membership.view()["live"]



async def fence_watchdog(fencer, down):
    """Wait the fence delay from the fence clock start, both read again after each wait (a
    grant sent just before the fence record reached the heartbeat thread moves the start)."""
    membership = fencer.node.membership
    while True:
        bound = fencer.node.replica.read(lambda s: timing.node_stop_bound(s, down))
        # the lease as long as with `down` counted: a member removed since its last grant got it so
        delay = timing.fence_delay(membership.lease_length({**fencer.node.members(), down: {}}), bound)
        start = membership.fence_clock_start(down)
        if start is None:
            return False, "this node is no longer the Raft leader"
        wait = start + delay - time.monotonic()
        if wait <= 0:
            return True, f"fence delay {delay:.2f} s passed since this leader's last lease to {down} or its election"
        await asyncio.sleep(wait)


def _runs(proc):
    """Still running: not gone, and not a zombie (dead, its parent has not reaped it yet)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _in_progress(state, down):
    """The fence record in progress; None once a restarted daemon announced itself (what it
    runs is its own: a fence of the earlier incarnation must not touch it)."""
    f = state["fence"].get(down)
    return f if f and f["status"] == "requested" else None


def _process_targets(state, down):
    fence = _in_progress(state, down)
    if fence is None:
        return []
    procs = [fence.get("process")]  # the daemon the fence was requested for
    procs += [{"pid": r["pid"], "create_time": r.get("pid_create_time"), "resource": r["id"],
               "witness": r["properties"].get("witness")}
              for g in state["groups"].values() if g["owner"] == down
              for r in (state["resources"][x] for x in g["resources"]) if r["pid"]]
    return [p for p in procs if p and p.get("create_time")]


async def _stop_recorded(data_dir, down):
    """Stop what the lost node's agents recorded as possibly running, as each agent stops at once
    (kill: no grace time for a process; an OCF script's stop with its stop timeout), since its
    daemon is dead and nobody else acts on these records. [] or what failed to stop."""
    left = []
    for resource in agents.leftovers(data_dir):
        agent = agents.create(resource, agents.Context(node=down, data_dir=data_dir))
        result = await agent.kill()
        if result.state != "offline":
            left.append(f"{resource.get('name')}: {result.detail}")
    return left


async def fence_process(fencer, down):
    """Kill the daemon and the resource processes of `down`, confirm they are gone; never a
    node this leader hears again."""
    if fencer.heard_again(down):
        return False, f"{down} was heard again before the fence"
    victims = []
    targets = fencer.node.replica.read(lambda s: _process_targets(s, down))
    for p in targets:
        try:
            proc = psutil.Process(p["pid"])
            if abs(proc.create_time() - p["create_time"]) < 0.01:
                victims.append(proc)
        except psutil.NoSuchProcess:
            continue
    for proc in victims:
        try:
            os.killpg(proc.pid, signal.SIGKILL) if os.getpgid(proc.pid) == proc.pid else proc.kill()
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            pass
    deadline = time.monotonic() + 5.0
    alive = victims
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # SIGKILLed processes are gone within milliseconds
        alive = [p for p in alive if _runs(p)]
    if alive:
        return False, f"still alive: {[p.pid for p in alive]}"
    data_dir = fencer.node.replica.read(lambda s: ((_in_progress(s, down) or {}).get("process") or {}).get("data_dir"))
    left = await _stop_recorded(data_dir, down) if data_dir else []
    if left:
        return False, f"could not stop: {'; '.join(left)}"
    # the fenced node's agent cannot write its stop line (its process may even have ended just
    # before the fence, with the daemon killed before it wrote the line): this fence does
    for p in (t for t in targets if t.get("witness")):
        records.append_line(p["witness"], {"event": "stop", "resource": p["resource"], "node": down,
                                           "t": time.monotonic(), "pid": p["pid"], "by": "fence"})
    return True, f"killed {len(victims)} process(es) of {down}" if victims else f"no process of {down} left"


def script_input(down, options):
    """The fence agent's stdin: name=value lines, ours first, then the configured options."""
    lines = ["action=off", f"plug={down}", f"nodename={down}"]
    lines += [f"{k}={v}" for k, v in options.items()]
    return "".join(line + "\n" for line in lines).encode()


async def fence_script(fencer, down):
    cfg = fencer.node.cfg
    try:
        proc = await asyncio.create_subprocess_exec(
            cfg.fence_script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        return False, f"fence script {cfg.fence_script} could not run: {e.strerror}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(script_input(down, cfg.fence_options)), cfg.fence_timeout)
    except asyncio.TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return False, f"fence script gave no answer within {cfg.fence_timeout} s (killed)"
    said = out.decode(errors="replace").strip()[-OUTPUT_KEPT:]
    if proc.returncode == 0:
        return True, "fence script exited 0" + (f": {said}" if said else "")
    return False, f"fence script exited {proc.returncode}" + (f": {said}" if said else "")


AGENTS = {"watchdog": fence_watchdog, "process": fence_process, "script": fence_script}
