"""Raft rules checked on one pysyncobj follower in this process: its messages go to a recording
transport and AppendEntries are handed to it directly, duplicated and reordered as a network
and a retrying leader can deliver them (Raft §5.3)."""
from hypothesis import given, settings
from hypothesis import strategies as st
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.transport import Transport

from raft import durability, rules

NOOP = b"\x01"  # pysyncobj's no-op command


class Recording(Transport):
    def __init__(self, syncObj, selfNode, otherNodes):
        super().__init__(syncObj, selfNode, otherNodes)
        self.sent = []

    def send(self, node, message):
        self.sent.append((node, message))
        return True


def follower(tmp_path):
    durability.install()
    rules.install()
    conf = SyncObjConf(autoTick=False, journalFile=str(tmp_path / "raft.journal"),
                       dynamicMembershipChange=True)
    obj = SyncObj("127.0.0.1:1", ["127.0.0.1:2", "127.0.0.1:3"], conf, transportClass=Recording)
    leader = sorted(obj._SyncObj__otherNodes, key=lambda n: n.id)[0]
    return obj, leader


def log_of(obj):
    return [(e[1], e[2]) for e in obj._SyncObj__raftLog]


def append_entries(term, prev_term, prev, entries, commit=1):
    return {"type": "append_entries", "term": term, "commit_index": commit, "prevLogIdx": prev,
            "prevLogTerm": prev_term, "entries": [(NOOP, i, t) for i, t in entries]}


def deliver(obj, leader, message):
    transport = obj._SyncObj__transport
    transport.sent.clear()
    obj._SyncObj__onMessageReceived(leader, message)
    return [m for _, m in transport.sent if m["type"] == "next_node_idx"]


LEADER_LOG = [(1, 0)] + [(i, 1) for i in range(2, 10)]  # what the leader of term 1 holds


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(0, 8)), min_size=1, max_size=12))
def test_duplicated_and_reordered_append_entries_never_drop_an_acknowledged_entry(tmp_path_factory, sends):
    obj, leader = follower(tmp_path_factory.mktemp("f"))
    journal = obj._SyncObj__raftLog
    truncations = []
    delete_from = journal.deleteEntriesFrom
    journal.deleteEntriesFrom = lambda i: (truncations.append((journal[i][1], acknowledged)), delete_from(i))
    try:
        acknowledged = 1
        for prev, count in sends:
            entries = LEADER_LOG[prev:prev + count]  # LEADER_LOG[i] holds index i + 1
            replies = deliver(obj, leader, append_entries(1, LEADER_LOG[prev - 1][1], prev, entries))
            for reply in replies:
                if reply["success"]:
                    acknowledged = max(acknowledged, reply["next_node_idx"] - 1)
            log = log_of(obj)
            assert log == LEADER_LOG[:len(log)], log  # never anything but the leader's entries
            assert len(log) >= acknowledged, (log, acknowledged)  # nor less than it acknowledged
            # not even for a moment (a crash then would lose them): no truncation at or below
            assert all(index > acked for index, acked in truncations), truncations
    finally:
        obj._destroy()


def test_a_conflicting_entry_is_truncated_with_everything_after_it(tmp_path):
    obj, leader = follower(tmp_path)
    try:
        deliver(obj, leader, append_entries(1, 0, 1, [(2, 1), (3, 1), (4, 1), (5, 1)]))
        # a new leader of term 2 never had 4 and 5 of term 1: its own entry 4 replaces them
        replies = deliver(obj, leader, append_entries(2, 1, 3, [(4, 2)]))
        assert log_of(obj) == [(1, 0), (2, 1), (3, 1), (4, 2)]
        assert [(r["success"], r["next_node_idx"]) for r in replies] == [(True, 5)]
        # a heartbeat that matches up to 3: success for 3, and entry 4 stays
        replies = deliver(obj, leader, append_entries(2, 1, 3, []))
        assert log_of(obj) == [(1, 0), (2, 1), (3, 1), (4, 2)]
        assert [(r["success"], r["next_node_idx"]) for r in replies] == [(True, 4)]
    finally:
        obj._destroy()


def test_commit_index_never_covers_unverified_entries(tmp_path):
    obj, leader = follower(tmp_path)
    try:
        deliver(obj, leader, append_entries(1, 0, 1, [(2, 1), (3, 1), (4, 1)]))
        # a heartbeat that only vouches for entries up to 2 cannot commit 3 and 4
        deliver(obj, leader, append_entries(2, 1, 2, [], commit=4))
        assert obj.raftCommitIndex == 2
    finally:
        obj._destroy()


def pre_vote_answer(obj, node, term, last_index, last_term):
    transport = obj._SyncObj__transport
    transport.sent.clear()
    obj._SyncObj__onMessageReceived(node, {"type": "pre_vote", "term": term, "last_log_index": last_index,
                                           "last_log_term": last_term})
    return [m["yes"] for _, m in transport.sent if m["type"] == "pre_vote_response"]


def test_pre_vote_is_granted_only_to_an_up_to_date_log_with_no_leader_heard(tmp_path):
    import time
    obj, leader = follower(tmp_path)
    other = next(n for n in obj._SyncObj__otherNodes if n != leader)
    try:
        deliver(obj, leader, append_entries(1, 0, 1, [(2, 1), (3, 1)]))
        assert obj.raftCurrentTerm == 1
        assert pre_vote_answer(obj, other, 2, 3, 1) == [False]  # a leader was just heard
        time.sleep(obj.conf.raftMinTimeout * 1.5)  # then it went quiet
        assert pre_vote_answer(obj, other, 2, 3, 1) == [True]
        assert pre_vote_answer(obj, other, 2, 2, 1) == [False]  # its log is behind
        assert pre_vote_answer(obj, other, 2, 9, 0) == [False]  # its last term is older
        assert pre_vote_answer(obj, other, 0, 3, 1) == [False]  # its term is behind
        assert obj.raftCurrentTerm == 1 and obj._SyncObj__votedForNodeId is None  # nothing changed
    finally:
        obj._destroy()
