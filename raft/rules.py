"""Raft rules pysyncobj 0.3.17 gets wrong, put right around its message handler.

§5.3, log matching. On an AppendEntries whose previous entry matches, pysyncobj deletes every
entry after it and appends the message's entries, even when those entries are already there:
a duplicated or delayed AppendEntries (a leader resends from a lower nextIndex after a
reconnect) deleted entries the follower had acknowledged, while the leader's matchIndex, which
never goes back, still counted them towards a majority. Raft truncates only at the first entry
whose term conflicts. So before pysyncobj sees the message, the entries already present are
skipped; if every entry is present (and it is not a bare heartbeat at the log's end),
pysyncobj only gets the
heartbeat part (term, leader, commit index capped at the last entry this message vouches for)
and the success answer is sent here.

Thesis §9.6, pre-vote. pysyncobj raises its term on every election timeout, so a follower cut
off from the others kept raising it (1 to 7 in 8 s) and on its return deposed a healthy leader.
Here an election starts only after a pre-vote round: the would-be candidate asks every peer
whether it would vote for it at term + 1, and a peer says yes only if the candidate's log is at
least as up to date as its own and it has not heard from a leader for raftMinTimeout (a leader
says no). Nothing changes on either side until a majority said yes. A leadership transfer
(pysyncobj's TimeoutNow) skips the round: the leader asked for it. Every node must run this
code: a peer that ignores pre-votes never says yes.
"""
import time
import weakref

from pysyncobj import syncobj as _syncobj


class _PreVote:
    """Per SyncObj, kept outside it: pysyncobj pickles every attribute added after its
    __init__ into its dumps."""

    def __init__(self):
        self.term = None  # the term of the round under way
        self.yes = set()
        self.next_round = 0.0
        self.leader_seen = float("-inf")  # when an AppendEntries of the current term came


_state = weakref.WeakKeyDictionary()


def _prevote(obj):
    pv = _state.get(obj)
    if pv is None:
        pv = _state[obj] = _PreVote()
    return pv


def _majority(obj, count):
    return count > (len(obj._SyncObj__otherNodes) + 1) / 2


def _may_elect(original):
    """pysyncobj asks this, once its election timeout passed, whether to start an election."""
    def connected(self):
        connected = original(self)
        if not connected or self._SyncObj__transferInProgress or not self._SyncObj__otherNodes:
            return connected
        pv = _prevote(self)
        term = self._SyncObj__raftCurrentTerm + 1
        if pv.term == term and _majority(self, len(pv.yes)):
            pv.term = None
            return True
        now = time.monotonic()
        if now >= pv.next_round:
            pv.term, pv.yes = term, {self._SyncObj__selfNode.id}
            pv.next_round = now + self._SyncObj__conf.raftMinTimeout / 2  # a lost round is cheap
            ask = {"type": "pre_vote", "term": term, "last_log_index": self._SyncObj__getCurrentLogIndex(),
                   "last_log_term": self._SyncObj__getCurrentLogTerm()}
            for node in self._SyncObj__otherNodes:
                self._SyncObj__transport.send(node, ask)
        return False
    return connected


def _answer_pre_vote(obj, node, message):
    pv = _prevote(obj)
    last_term = obj._SyncObj__getCurrentLogTerm()
    up_to_date = (message["last_log_term"], message["last_log_index"]) >= \
        (last_term, obj._SyncObj__getCurrentLogIndex())
    quiet = time.monotonic() - pv.leader_seen >= obj._SyncObj__conf.raftMinTimeout
    yes = (message["term"] >= obj._SyncObj__raftCurrentTerm and up_to_date and quiet
           and not obj._isLeader())
    obj._SyncObj__transport.send(node, {"type": "pre_vote_response", "term": message["term"], "yes": yes})


def _count_pre_vote(obj, node, message):
    pv = _prevote(obj)
    if message["yes"] and message["term"] == pv.term:
        pv.yes.add(node.id)
        if _majority(obj, len(pv.yes)):
            obj._SyncObj__raftElectionDeadline = 0  # start the election at the next tick


def _has(obj, idx, term):
    entries = obj._SyncObj__getEntries(idx, 1)
    return bool(entries) and entries[0][2] == term


def _received(original):
    handle = _append_entries(original)

    def received(self, node, message):
        kind = message.get("type")
        if kind == "pre_vote":
            return _answer_pre_vote(self, node, message)
        if kind == "pre_vote_response":
            return _count_pre_vote(self, node, message)
        if kind == "append_entries" and message["term"] >= self._SyncObj__raftCurrentTerm:
            pv = _prevote(self)
            pv.leader_seen, pv.term = time.monotonic(), None  # a leader is there: no election
        return handle(self, node, message)
    return received


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
        if not entries and self._SyncObj__getCurrentLogIndex() == last:
            return original(self, node, message)  # a heartbeat at the log's end: nothing to lose
        # every entry is here: pysyncobj would delete them (and what follows) and add them back
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
    cls._SyncObj__onMessageReceived = _received(cls._SyncObj__onMessageReceived)
    cls._SyncObj__connectedToAnyone = _may_elect(cls._SyncObj__connectedToAnyone)
    _installed = True
