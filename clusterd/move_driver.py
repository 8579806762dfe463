"""The leader's writer of decide()'s commands (decide.py): moves abandoned or asked again,
fence records cleared, failovers, domain requests, exit results of nodes no longer active.

Called from Coordinator.step() on the Raft leader. A command whose handle decide left open
(None) gets a new one here: the only choice decide cannot make without breaking its purity.
A command refused because the state moved on meanwhile is logged; the next step decides again.
"""
import logging
import uuid

from .errors import ClusterError

log = logging.getLogger("clusterd.moves")


class MoveDriver:
    def __init__(self, node):
        self.node = node

    async def carry_out(self, commands):
        for cmd in commands:
            fields = {k: (str(uuid.uuid4()) if k == "handle" and v is None else v) for k, v in cmd.items() if k != "op"}
            log.info("%s of %s", cmd["op"], fields.get("group") or fields.get("node") or fields.get("handle"))
            try:
                await self.node.write(cmd["op"], **fields)
            except ClusterError as e:  # the state moved on meanwhile, or no quorum: the next step decides again
                log.info("%s of %s not committed: %s", cmd["op"], fields.get("group") or fields.get("node"), e)
