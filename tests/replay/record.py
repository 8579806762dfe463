"""Record the journal that tests/test_journal_replay_core.py replays: a real 3-node cluster runs
groups, resources, dependencies, moves, a drain and a failback, a recovery domain switchover,
a node killed (fence and failover) and restarted, and deletes; once every node holds the same
state at the same index, the commands committed up to that index are read from one node's Raft
journal and written to journal.msgpack, with that index and the nodes' state_hash in
expected.json.

    .venv/bin/python tests/replay/record.py        # rewrites tests/replay/journal.msgpack and expected.json
    .venv/bin/python tests/replay/record.py DIR    # writes them to DIR instead

Re-record only when a change of behaviour is intended: the point of the fixture is that the
code of the day replays a journal written by an earlier one to the same state.
"""
import json
import os
import sys
import tempfile
import time

import msgpack
from pysyncobj.pickle import loads

from clusterctl.lab.launcher import LocalCluster
from clusterd.client import Client
from raft.journal import parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from conftest import wait_for  # noqa: E402  (tests/ is no package: found by path)
REGULAR = 0  # pysyncobj's _COMMAND_TYPE.REGULAR: an entry of the state machine's (no-ops and membership are others)


def wait(predicate, what, timeout=60.0):
    return wait_for(predicate, timeout=timeout, interval=0.1, what=what)


def online(c, name, owner=None):
    return wait(lambda: (lambda g: g["state"] == "Online" and (owner is None or g["owner"] == owner))(
        c.Group.get_record(name)), f"{name} online" + (f" on {owner}" if owner else ""))


def operations(cluster, c):
    """A representative working day, through the public API."""
    c.Cluster.add_to_other_config(c.Cluster.get_all()[0], "owner", "replay")
    for name, owner, count in (("web", "node1", 1), ("db", "node3", 2), ("batch", "node2", 1)):
        c.Group.create(name)
        c.Group.set_preferred_owners(name, [owner])
        for i in range(count):
            c.Resource.create(name, f"{name}-r{i}", "dummy", {})
        c.Group.online(name)
    c.Resource.add_dependency("db-r1", "db-r0")
    for name, owner in (("web", "node1"), ("db", "node3"), ("batch", "node2")):
        online(c, name, owner)
    op = c.Group.move("web", "node2", 0, {})
    assert c.Operation.wait(op["handle"], 60)["status"] == "succeeded"
    c.Node.pause("node2", True, 0)  # drain: web and batch leave node2
    wait(lambda: c.Node.get_pause_record("node2")["drain_status"] == "Completed", "drain of node2")
    c.Node.resume("node2", "immediate")  # failback to their preferred owner
    online(c, "batch", "node2")
    c.Group.create("dom")
    c.Resource.create("dom", "dom-r0", "dummy", {})
    c.Domain.create("dom", "primary-backup", ["node1", "node2", "node3"], ["primary", "backup", "backup"], None)
    c.Group.online("dom")
    online(c, "dom", "node1")
    c.Domain.switchover("dom", "results")
    online(c, "dom", "node2")
    cluster.kill("node3")  # db's owner: fenced, then failed over
    wait(lambda: c.Group.get_record("db")["owner"] != "node3" and c.Group.get_record("db")["state"] == "Online",
         "db failed over")
    cluster.start("node3")
    cluster.wait_quorate(60)
    c.Group.offline("batch")
    wait(lambda: c.Group.get_record("batch")["state"] == "Offline", "batch offline")
    c.Resource.delete("batch-r0")
    c.Group.delete("batch", False)


def settled(cluster, clients):
    """(index, hash) once every node reports the same state at the same index twice in a row."""
    def same():
        seen = {(s["state_index"], s["state_hash"]) for s in (cl.Node.status() for cl in clients)}
        return next(iter(seen)) if len(seen) == 1 else None
    first = wait(same, "every node at the same state")
    time.sleep(2.0)
    again = wait(same, "every node at the same state")
    return again if again == first else settled(cluster, clients)


def committed_batches(journal, last_index):
    """The state machine's entries (msgpack blobs of command batches) up to last_index."""
    with open(journal, "rb") as f:
        entries, _, _ = parse(f.read())
    assert entries and entries[0][1] == 1, "the journal was compacted: record a shorter run"
    blobs = []
    for command, idx, _term in entries:
        if idx > last_index:
            break
        if command[0] != REGULAR:
            continue
        _func, args = loads(command[1:])
        blobs.append(args[0])
    return blobs


def main(out=HERE):
    with tempfile.TemporaryDirectory(prefix="replay-") as d:
        cluster = LocalCluster(os.path.join(d, "c"))
        cluster.create(3)
        try:
            for n in ("node1", "node2", "node3"):
                cluster.start(n)
            cluster.wait_quorate(60)
            creds = cluster.credentials()

            def client(name):
                return Client(cluster.node(name)["api"], creds["user"], creds["password"], timeout=10)
            with client("node1") as c:
                operations(cluster, c)
            clients = [client(n) for n in ("node1", "node2", "node3")]
            try:
                index, digest = settled(cluster, clients)
            finally:
                for cl in clients:
                    cl.close()
        finally:
            cluster.stop_all()
        blobs = committed_batches(os.path.join(cluster.dir, "node1", "data", "raft.journal"), index)
    with open(os.path.join(out, "journal.msgpack"), "wb") as f:
        f.write(msgpack.packb(blobs, use_bin_type=True))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"state_index": index, "state_hash": digest, "entries": len(blobs)}, f, indent=2)
        f.write("\n")
    print(f"{len(blobs)} entries up to index {index}: state_hash {digest}")


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
