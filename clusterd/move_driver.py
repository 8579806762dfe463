"""The leader's part in group moves (moves.py): ask queued moves again, abandon stale ones.

Called from Coordinator.step() on the Raft leader. Its memory is the database only, so a new
leader carries on: a queued move is asked again once token/2 has passed since it was queued
(queued_at is the committed wall time), for as long as it takes, until it moves or a client
cancels it.
"""
import logging
import time

from . import moves
from .errors import ClusterError

log = logging.getLogger("clusterd.moves")


class MoveDriver:
    def __init__(self, node):
        self.node = node

    async def step(self):
        queued, stale = self.node.replica.read(lambda s: (moves.queued_moves(s), moves.stale_moves(s)))
        retry_after = self.node.cfg.token_timeout / 2
        for gid, handle in stale:
            await self._write("group.move_abandon", group=gid, handle=handle, reason="owner changed")
        for gid, handle, queued_at in queued:
            if time.time() - queued_at >= retry_after:
                await self._write("group.move_retry", group=gid, handle=handle)

    async def _write(self, op, **args):
        try:
            await self.node.write(op, **args)
        except ClusterError as e:  # the move moved on meanwhile, or no quorum: next step
            log.info("%s of %s not committed: %s", op, args.get("group"), e)
