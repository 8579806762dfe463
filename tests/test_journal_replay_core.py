"""A journal recorded from a real cluster (tests/replay/record.py: groups, resources, a
dependency, moves, a drain and failback, a domain switchover, a node killed, fenced and failed
over, deletes) replays through db.apply to the state_hash its nodes reported: code that changes
how any committed command applies, or the state's shape, fails here."""
import json
import os

import msgpack

from clusterd import db
from raft.replica import unpack

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replay")


def recorded():
    with open(os.path.join(HERE, "journal.msgpack"), "rb") as f:
        blobs = msgpack.unpackb(f.read(), raw=False)
    with open(os.path.join(HERE, "expected.json")) as f:
        return blobs, json.load(f)


def test_the_recorded_journal_replays_to_the_state_hash_the_cluster_reported():
    blobs, expected = recorded()
    assert len(blobs) == expected["entries"]
    state = db.initial_state()
    for blob in blobs:
        for command in unpack(blob):  # each entry is a batch, as raft.replica applies it
            db.apply(state, command)
    assert db.state_hash(state) == expected["state_hash"]
