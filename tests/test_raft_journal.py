"""raft/journal.py against a plain list: any sequence of appends, truncations and compactions,
then a reopen, gives the same entries; a torn last record ends the log (pure, no processes)."""
import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from raft.journal import FIRST, DurableJournal, image, parse

OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.binary(max_size=40)),
    st.tuples(st.just("from"), st.integers(0, 30)),
    st.tuples(st.just("to"), st.integers(0, 30))), max_size=40)


@settings(max_examples=80, deadline=None)
@given(OPS)
def test_the_journal_matches_a_list_after_any_operations_and_a_reopen(tmp_path_factory, ops):
    path = str(tmp_path_factory.mktemp("j") / "raft.journal")
    j, model, idx = DurableJournal(path), [], 0
    for op, arg in ops:
        if op == "add":
            idx += 1
            j.add(arg, idx, idx // 3)
            model.append((arg, idx, idx // 3))
        elif op == "from":
            j.deleteEntriesFrom(arg)
            del model[arg:]
        else:
            j.deleteEntriesTo(arg)
            model = model[arg:]
        assert list(j) == model
    j._destroy()
    assert list(DurableJournal(path)) == model


def test_a_torn_last_record_ends_the_log():
    entries = [(b"a" * 10, 1, 1), (b"b" * 20, 2, 1), (b"c" * 30, 3, 2)]
    data = image(entries)
    assert parse(data)[0] == entries
    assert parse(data[:-5])[0] == entries[:2]  # the last record cut short
    zeroed = data[:-10] + b"\0" * 10  # its trailing length never written
    assert parse(zeroed)[0] == entries[:2]
    assert parse(data[:FIRST])[0] == []
    # an end offset that points past the file is bounded by the file
    assert parse(data[:-1])[0] == entries[:2]


def test_an_empty_or_missing_journal_starts_empty(tmp_path):
    path = str(tmp_path / "raft.journal")
    assert len(DurableJournal(path)) == 0 and os.path.getsize(path) == FIRST
    assert struct.unpack_from("<I", open(path, "rb").read(), FIRST - 4)[0] == FIRST


def test_a_journal_written_by_pysyncobj_loads(tmp_path):
    from pysyncobj.journal import FileJournal
    path = str(tmp_path / "raft.journal")
    old = FileJournal(path)
    entries = [(b"x" * i, i + 1, 1 + i // 4) for i in range(20)]
    for e in entries:
        old.add(*e)
    old.setCurrentTerm(7, "127.0.0.1:1")
    old._destroy()
    j = DurableJournal(path)
    assert list(j) == entries
    assert (j.getCurrentTerm(), j.getVotedForNodeId()) == (7, "127.0.0.1:1")
