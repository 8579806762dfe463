"""The lease and the fence on a simulated network of the daemon's own Membership objects: the
owner's last possible run instant is always before the leader's earliest restart."""
import asyncio
import types

import pytest

from clusterd import fencing, membership, node as node_module, timing
from clusterd.node import Node

from simnet import Net, patch_clock

PROCESS = {"type": "process", "properties": {}}
OCF_30 = {"type": "ocf", "properties": {"script": "/x", "timeout": 30}}


class FakeReplica:
    def __init__(self, net, name, leader, state):
        self.net, self.name, self.leader_name, self.state = net, name, leader, state

    def read(self, fn):
        return fn(self.state)

    def leader(self):
        return f"raft-{self.leader_name}"

    def is_leader(self):
        return self.name == self.leader_name

    def ready(self):
        return True

    def last_applied(self):
        return self.net.raft[self.name].applied


def sim_state(net, owner, resources):
    return {"members": {n: {"raft": f"raft-{n}", **m} for n, m in net.members.items()},
            "groups": {"g": {"id": "g", "owner": owner, "resources": [f"r{i}" for i in range(len(resources))]}},
            "resources": {f"r{i}": {"id": f"r{i}", **r} for i, r in enumerate(resources)},
            "fence": {}}


def sim_node(net, name, leader, state):
    n = object.__new__(Node)
    n.cfg = types.SimpleNamespace(name=name, fence_agent="watchdog")
    n.membership = net.nodes[name]
    n.replica = FakeReplica(net, name, leader, state)
    return n


def make_net(monkeypatch, names=("node1", "node2", "node3"), leader="node1"):
    net = Net(names)
    patch_clock(monkeypatch, net.clock, membership, node_module, fencing)
    for n in names:
        net.raft[n].leader = n == leader
    return net


class OwnerRuns:
    """The owner's books: the latest lease deadline it ever held (it runs before it, and stops
    within REACTION + its group's stop bound after it)."""

    def __init__(self, net, owner):
        self.net, self.owner, self.last_deadline = net, owner, float("-inf")

    def sample(self):
        d = self.owner.lease_deadline()
        if self.net.clock.t < d:
            self.last_deadline = max(self.last_deadline, d)


def run_watchdog(net, monkeypatch, leader_node, down, each):
    async def sim_sleep(seconds):
        net.run(max(seconds, 0.0), each=each)
    monkeypatch.setattr(fencing, "asyncio", types.SimpleNamespace(sleep=sim_sleep))
    fencer = fencing.Fencer(leader_node, started=net.clock.t)
    return asyncio.run(fencing.fence_watchdog(fencer, down))


@pytest.mark.parametrize("resources", [[PROCESS], [OCF_30, PROCESS]], ids=["process", "ocf+process"])
@pytest.mark.parametrize("cut", [("node2", "node1"), ("node1", "node2")], ids=["owner-to-leader", "leader-to-owner"])
def test_the_watchdog_outwaits_the_owners_lease_and_its_groups_whole_stop(monkeypatch, resources, cut):
    """After a one-way cut between the owner and the leader, the leader's watchdog fence ends
    only after the owner's last possible run instant: its lease, then its group's stop (every
    resource one after another, each with its real stop timeout and the kill wait)."""
    net = make_net(monkeypatch)
    state = sim_state(net, "node2", resources)
    leader, owner = sim_node(net, "node1", "node1", state), sim_node(net, "node2", "node1", state)
    runs = OwnerRuns(net, owner)
    net.run(3.0, each=runs.sample)
    assert "node2" in net.nodes["node1"].view()["live"] and net.clock.t < owner.lease_deadline()
    net.cut.add(cut)
    for _ in range(1000):  # until the leader counts the owner lost (the coordinator fences then)
        net.run(0.01, each=runs.sample)
        if "node2" not in net.nodes["node1"].view()["live"]:
            break
    state["fence"]["node2"] = {"status": "requested"}
    net.raft["node1"].fenced = net.raft["node2"].fenced = frozenset({"node2"})
    ok, _ = run_watchdog(net, monkeypatch, leader, "node2", runs.sample)
    restart = net.clock.t
    net.run(5.0, each=runs.sample)  # the owner gets no lease afterwards either
    assert ok
    last_run = runs.last_deadline + timing.REACTION + timing.group_stop_bound(state, state["groups"]["g"])
    assert last_run < restart, f"owner may run until {last_run - restart:+.2f} s after the restart"


def test_queued_heartbeats_after_a_pause_give_neither_quorum_nor_a_lease(monkeypatch):
    """SIGSTOP: the paused node's socket fills with its peers' heartbeats; resumed, it reads
    them oldest first. They are stale: they must not make it quorate, nor give it a lease."""
    net = make_net(monkeypatch)
    state = sim_state(net, "node2", [PROCESS])
    owner = sim_node(net, "node2", "node1", state)
    net.run(3.0)
    m = net.nodes["node2"]
    assert m.view()["is_quorate"] and net.clock.t < owner.lease_deadline()
    net.paused.add("node2")
    net.run(5.0)  # five tokens: its peers beat into its socket meanwhile
    net.paused |= {"node1", "node3"}  # now nobody can answer it afresh
    net.paused.discard("node2")
    net.step(0.01)  # it reads its whole queue
    assert not [p for p in net.queue if p[1] == "node2"]
    assert m.view()["live"] == ["node2"] and not m.view()["is_quorate"]
    assert owner.lease_deadline() <= net.clock.t
