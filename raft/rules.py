"""Raft rules pysyncobj 0.3.17 gets wrong, put right around its message handler.

§5.3, log matching. On an AppendEntries whose previous entry matches, pysyncobj deletes every
entry after it and appends the message's entries, even when those entries are already there:
a duplicated or delayed AppendEntries (a leader resends from a lower nextIndex after a
reconnect) deleted entries the follower had acknowledged, while the leader's matchIndex, which
never goes back, still counted them towards a majority. Raft truncates only at the first entry
whose term conflicts. So before pysyncobj sees the message, the entries already present are
skipped; if every entry is present and the log goes further, pysyncobj only gets the
heartbeat part (term, leader, commit index capped at the last entry this message vouches for)
and the success answer is sent here.
"""
from pysyncobj import syncobj as _syncobj


def _has(obj, idx, term):
    entries = obj._SyncObj__getEntries(idx, 1)
    return bool(entries) and entries[0][2] == term


def _append_entries(original):
    def received(self, node, message):
        if (message.get("type") != "append_entries" or "entries" not in message
                or "prevLogIdx" not in message or message["term"] < self._SyncObj__raftCurrentTerm
                or not _has(self, message["prevLogIdx"], message["prevLogTerm"])):
            return original(self, node, message)  # pysyncobj's path is right for these
        entries = message["entries"]
        present = 0
        while present < len(entries) and _has(self, entries[present][1], entries[present][2]):
            present += 1
        last = message["prevLogIdx"] + present  # the last entry this message vouches for
        if present < len(entries):  # a conflict or the end of the log: truncating there is Raft's
            if present:
                message = dict(message, prevLogIdx=last, prevLogTerm=entries[present - 1][2],
                               entries=entries[present:])
            return original(self, node, message)
        if self._SyncObj__getCurrentLogIndex() == last:
            return original(self, node, message)  # nothing after them to lose
        heartbeat = {k: v for k, v in message.items() if k not in ("prevLogIdx", "prevLogTerm", "entries")}
        heartbeat["commit_index"] = min(message["commit_index"], last)
        original(self, node, heartbeat)
        self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=last + 1, success=True)
    return received


_installed = False


def install():
    """Patch pysyncobj once per process; idempotent."""
    global _installed
    if _installed:
        return
    cls = _syncobj.SyncObj
    cls._SyncObj__onMessageReceived = _append_entries(cls._SyncObj__onMessageReceived)
    _installed = True
