"""Snapshots carry the version of the state's shape; a snapshot written before they did (the
bare state) loads through db.upgrade, with every key initial_state has, and one from a newer
schema is refused rather than misread."""
import msgpack
import pytest

from clusterd import db, events
from raft.replica import load_snapshot, snapshot, unpack
from test_journal_replay_core import recorded


def replayed(blobs, state=None):
    state = db.initial_state() if state is None else state
    for blob in blobs:
        for command in unpack(blob):
            db.apply(state, command)
    return state


def test_a_snapshot_holds_the_schema_version_and_loads_to_the_same_state():
    state = replayed(recorded()[0])
    data = snapshot(state, db.SCHEMA_VERSION)
    assert msgpack.unpackb(data, raw=False, strict_map_key=False)["schema"] == db.SCHEMA_VERSION
    assert db.state_hash(load_snapshot(data, db.upgrade)) == db.state_hash(state)


def test_a_journal_replayed_across_a_snapshot_reaches_the_recorded_state_hash():
    blobs, expected = recorded()
    half = len(blobs) // 2
    data = snapshot(replayed(blobs[:half]), db.SCHEMA_VERSION)
    assert db.state_hash(replayed(blobs[half:], load_snapshot(data, db.upgrade))) == expected["state_hash"]


def test_a_bare_snapshot_from_before_the_version_loads_with_every_key():
    blobs, expected = recorded()
    state = replayed(blobs)
    assert db.state_hash(load_snapshot(msgpack.packb(state, use_bin_type=True), db.upgrade)) == expected["state_hash"]
    older = {k: v for k, v in state.items() if k not in ("queues", "queue_order", "domain_requests", "nodes")}
    loaded = load_snapshot(msgpack.packb(older, use_bin_type=True), db.upgrade)
    assert loaded.keys() == db.initial_state().keys()
    events.post(loaded, "q", "k", {"ok": True})  # code that reads state["queues"] works on it
    assert events.read(loaded, "q", "k")["ok"] is True


@pytest.mark.parametrize("schema", [db.SCHEMA_VERSION + 1, -1, "1", None, 1.5, True])
def test_a_snapshot_of_an_unknown_schema_is_refused(schema):
    with pytest.raises(ValueError, match="snapshot of schema"):
        load_snapshot(msgpack.packb({"schema": schema, "state": db.initial_state()}, use_bin_type=True), db.upgrade)
