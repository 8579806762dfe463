"""Exit programs (imperative shell, every node): run the group's exit program on this node
when a committed recovery-domain request asks, and commit the result.

How an exit program is called (IBM passes a success indicator, an action code and the CRG's
data; we use a process's plain interface):

    EXIT_PROGRAM ACTION_CODE ROLE_NUMBER GROUP_NAME

with the same in the environment, plus names: CLUSTERD_ACTION (code), CLUSTERD_ACTION_NAME
("Remove Node"), CLUSTERD_ROLE ("primary", "backup", "replicate", "peer"), CLUSTERD_ROLE_NUMBER
(primary 0, backup n, replicate -1, peer -4), CLUSTERD_GROUP, CLUSTERD_NODE (this node),
CLUSTERD_REQUEST (the request handle), CLUSTERD_KIND (add_node, remove_node, set_role,
switchover, failover, start, end), CLUSTERD_TARGET_NODE (the node the request is about, or the
switchover's new primary). In a failover the node the group leaves gets End Node (16), the others
Failover (9) (domains.action_for). Exit status 0 is success; anything else, a signal, or
EXEC_TIMEOUT seconds is a failure. Its first 1,000 characters of stderr travel with a failure to
the results queue.

An exit program may not call the recovery-domain APIs (IBM: "This API cannot be called from a
cluster resource group exit program"): CLUSTERD_REQUEST in its environment makes the Python
client and clusterctl pass the request on, and the daemon refuses those calls.
"""
import asyncio
import logging
import os

from . import domains
from .errors import ClusterError

log = logging.getLogger("clusterd.exitprog")

EXEC_TIMEOUT = 60.0
TICK = 0.1


class ExitPrograms:
    def __init__(self, node):
        self.node = node
        self.me = node.cfg.name
        self.running = set()  # (handle, phase)

    async def run(self):
        while True:
            await asyncio.sleep(TICK)
            try:
                self.step()
            except ClusterError:
                pass
            except Exception:
                log.exception("exit program step failed")

    def step(self):
        if not (self.node.replica.ready() and self.node.membership.view()["is_quorate"]):
            return
        me = self.me
        due = self.node.read(lambda s: [dict(r, roles=dict(r["roles"])) for r in s["domain_requests"].values()
                                        if r["status"] == "pending" and r["phase"] in ("exit", "undo")
                                        and me in r["participants"] and me not in r["results"]])
        for req in due:
            key = (req["handle"], req["phase"])
            if key not in self.running:
                self.running.add(key)
                task = asyncio.ensure_future(self._call(req))
                task.add_done_callback(lambda _t, key=key: self.running.discard(key))

    async def _call(self, req):
        role, number = req["roles"].get(self.me, [None, None])
        action = domains.action_for(req, self.me)
        env = dict(os.environ, CLUSTERD_ACTION=str(action), CLUSTERD_ACTION_NAME=domains.ACTION_NAMES.get(action, ""),
                   CLUSTERD_ROLE=str(role), CLUSTERD_ROLE_NUMBER=str(number), CLUSTERD_GROUP=req["group_name"],
                   CLUSTERD_NODE=self.me, CLUSTERD_REQUEST=req["handle"], CLUSTERD_KIND=req["kind"],
                   CLUSTERD_TARGET_NODE=str(req["target"] or req["node"] or ""))
        ok, detail = await run_program(req["exit_program"], [str(action), str(number), req["group_name"]], env)
        log.info("exit program %s action %s on %s: %s %s", req["exit_program"], action, self.me,
                 "ok" if ok else "FAILED", detail)
        for _ in range(20):  # the leader may be changing: retry the same idempotent write
            try:
                await self.node.write("domain.exit_result", rid=f"{req['handle']}-{req['phase']}-{self.me}",
                                      handle=req["handle"], phase=req["phase"], node=self.me, ok=ok, detail=detail)
                return
            except ClusterError as e:
                if e.code in ("OPERATION_NOT_FOUND", "ERROR_INVALID_PARAMETER"):
                    return
                await asyncio.sleep(0.5)


async def run_program(path, args, env, timeout=EXEC_TIMEOUT):
    """(ok, detail): run path with args; ok when it exits 0 within the timeout."""
    try:
        proc = await asyncio.create_subprocess_exec(path, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE, start_new_session=True)
    except OSError as e:
        return False, f"cannot run {path}: {e.strerror or e}"
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"{path} ran past {timeout:.0f} s"
    text = err.decode(errors="replace").strip()[:1000]
    if proc.returncode == 0:
        return True, ""
    return False, f"exit status {proc.returncode}" + (f": {text}" if text else "")
