"""Tasks: the table behind xapi's Async.* calls and its task class.

A task runs on the node that was asked and lives in that node's memory, like a session.
status goes "pending" -> "success" (result holds the value, as the interface encoded it)
or "failure" (error_info holds [CODE, params...]). The table is bounded: past MAX_TASKS the
oldest finished task is dropped first.
"""
import asyncio
import logging
import time
import uuid
from collections import OrderedDict

from .errors import ClusterError

log = logging.getLogger("clusterd.tasks")

MAX_TASKS = 1000
NULL_REF = "OpaqueRef:NULL"


class Tasks:
    def __init__(self):
        self.records = OrderedDict()  # ref -> task record
        self._running = set()

    def start(self, name, owner, coro):
        """Run coro as a task; return its ref at once."""
        ref = f"OpaqueRef:{uuid.uuid4()}"
        self.records[ref] = {
            "uuid": str(uuid.uuid4()), "name_label": name, "name_description": "", "owner": owner,
            "status": "pending", "progress": 0.0, "created": time.time(), "finished": 0.0,
            "result": "", "error_info": [], "type": "", "other_config": {},
            "allowed_operations": [], "current_operations": {}, "subtask_of": NULL_REF, "subtasks": [],
        }
        self._evict()
        fut = asyncio.ensure_future(self._run(self.records[ref], coro))
        self._running.add(fut)
        fut.add_done_callback(self._running.discard)
        return ref

    async def _run(self, record, coro):
        try:
            record["result"] = await coro
            record["status"] = "success"
        except ClusterError as e:
            record["error_info"] = [e.code, *e.params]
            record["status"] = "failure"
        except Exception as e:  # a bug: report it on the task, keep serving
            log.exception("task %s failed", record["name_label"])
            record["error_info"] = ["INTERNAL_ERROR", repr(e)]
            record["status"] = "failure"
        finally:
            record["progress"] = 1.0
            record["finished"] = time.time()

    def _evict(self):
        while len(self.records) > MAX_TASKS:
            done = next((r for r, t in self.records.items() if t["status"] != "pending"), None)
            del self.records[done or next(iter(self.records))]

    def get(self, ref):
        task = self.records.get(ref) if isinstance(ref, str) else None
        if task is None:
            raise ClusterError("HANDLE_INVALID", "task", ref)
        return task

    def destroy(self, ref):
        self.get(ref)
        del self.records[ref]
