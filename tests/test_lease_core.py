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


# -- the property: random timelines over the pure books -----------------------------------------
# Every node is a lease.LeaseBook on a clock of its own (offset, and a rate within the drift
# bound); packets are lease.Heartbeat values with random delay, loss and long queueing; a
# paused node neither sends nor reads, and reads its queue oldest first when it resumes. Raft is
# modelled by terms: an election makes a majority of voters adopt the next term before its
# leader takes office; every other node, the deposed leader included, learns the term some
# random time later (a stale leader keeps granting meanwhile). The current leader fences the
# owner once it counts it lost and restarts its group when timing.fence_delay has passed from
# lease.fence_clock_start; the owner runs until its latest lease deadline, then stops within
# REACTION + its group's stop bound. The margin is set to 0: the bound must hold without it.
import contextlib  # noqa: E402
import dataclasses as _dc  # noqa: E402
import random  # noqa: E402

from hypothesis import HealthCheck, example, given, settings, strategies as st  # noqa: E402

from clusterd import lease, quorum  # noqa: E402

DT = 0.05
TOKEN_TIMEOUT, COEFFICIENT = 1.0, 0.65


@_dc.dataclass
class SimNode:
    name: str
    rate: float
    offset: float
    book: lease.LeaseBook
    term: int = 1
    leader: bool = False
    next_beat: float = 0.0
    paused_until: float = 0.0

    def clock(self, t: float) -> float:
        return self.offset + self.rate * t

    def real(self, local: float) -> float:
        return (local - self.offset) / self.rate


class Timeline:
    def __init__(self, n, owner, stop_bound, rates, offsets, loss, max_delay, queue_p, seed):
        self.names = [f"n{i}" for i in range(n)]
        self.rng = random.Random(seed)
        self.nodes = {x: SimNode(x, rates[i], offsets[i], lease.LeaseBook(x, 1)) for i, x in enumerate(self.names)}
        self.nodes["n0"].leader = True
        self.owner, self.stop_bound = self.names[owner], stop_bound
        self.loss, self.max_delay, self.queue_p = loss, max_delay, queue_p
        self.token = quorum.effective_token(TOKEN_TIMEOUT, COEFFICIENT, n)
        self.lease = timing.lease_length(self.token)
        self.cut = set()  # (src, dst)
        self.queue = []  # (arrival, order, dst, hb)
        self.order = 0
        self.max_term = 1
        self.learn = []  # (real time, node, term): when a node learns of a newer term
        self.fence_term = None  # the term in which the fence request was committed
        self.restart = None  # real time of the leader's earliest restart
        self.last_deadline = float("-inf")  # real time of the owner's latest lease deadline

    # Raft, as the books see it
    def raft(self, node: SimNode) -> lease.RaftView:
        fenced = frozenset([self.owner]) if self.fence_term is not None and node.term >= self.fence_term else frozenset()
        return lease.RaftView(term=node.term, leader=node.leader, leader_ready=node.leader, applied=10, fenced=fenced)

    def elect(self, t, new_leader, voters):
        self.max_term += 1
        for v in voters:  # the voters adopt the new term before they vote
            self.nodes[v].term, self.nodes[v].leader = self.max_term, False
        self.nodes[new_leader].leader = True
        for x in self.names:
            if x not in voters:
                self.learn.append((t + self.rng.uniform(0, 12), x, self.max_term))

    # the network
    def send(self, t, src: SimNode, names, reply):
        local = src.clock(t)
        out = src.book.begin_send(local, names, token=self.token, members=self.names)
        raft = self.raft(src)
        beats = src.book.finish_send(out, raft, local, members=self.names, lease=self.lease, reply=reply)
        for dst, hb in beats.items():
            if (src.name, dst) in self.cut or self.rng.random() < self.loss:
                continue
            delay = self.rng.uniform(0.0005, self.max_delay)
            if self.rng.random() < self.queue_p:
                delay += self.rng.uniform(0, 5.0)  # held in a queue somewhere
            self.order += 1
            self.queue.append((t + delay, self.order, dst, hb))

    def step(self, t):
        for when, x, term in [e for e in self.learn if e[0] <= t]:
            self.learn.remove((when, x, term))
            node = self.nodes[x]
            if term > node.term:
                node.term, node.leader = term, False
        due = sorted(p for p in self.queue if p[0] <= t and self.nodes[p[2]].paused_until <= t)
        for p in due:
            self.queue.remove(p)
            node = self.nodes[p[2]]
            hb = p[3]
            if node.book.accept(hb, node.clock(t), lease=self.lease, applied=10) is None and not hb.reply:
                self.send(t, node, [hb.sender], reply=True)
        for node in self.nodes.values():
            if node.paused_until > t:
                continue
            local = node.clock(t)
            if local >= node.next_beat:
                self.send(t, node, [x for x in self.names if x != node.name], reply=False)
                node.next_beat = local + TOKEN_TIMEOUT / 4
        owner = self.nodes[self.owner]
        if owner.paused_until <= t:
            d = owner.book.lease_deadline(owner.clock(t), self.raft(owner), members=self.names, lease=self.lease)
            if owner.clock(t) < d:
                self.last_deadline = max(self.last_deadline, owner.real(d))
        self.coordinate(t)

    def coordinate(self, t):
        """The current leader: fence the owner once it counts it lost; restart after the delay."""
        if self.restart is not None or t < 1.0:  # the cluster forms first
            return
        for leader in self.nodes.values():
            if not (leader.leader and leader.term == self.max_term) or leader.paused_until > t:
                continue
            if leader.name == self.owner:
                return
            local = leader.clock(t)
            if self.fence_term is None:
                if self.owner in leader.book.live(local, self.token, self.names):
                    return
                self.fence_term = leader.term
            leader.book.observe_leadership(local, leader.term, True)
            start = leader.book.fence_clock_start(self.owner)
            if local >= start + timing.fence_delay(self.lease, self.stop_bound):
                self.restart = t

    def run(self, events, until):
        events = sorted(events, key=lambda e: e[0])
        t = 0.0
        while t < until:
            t = round(t + DT, 6)
            while events and events[0][0] <= t:
                self.apply(t, events.pop(0))
            self.step(t)
        return self

    def apply(self, t, event):
        _, kind, a, b = event
        names = self.names
        if kind == "cut":  # one way, a -> b
            self.cut.add((names[a % len(names)], names[b % len(names)]))
        elif kind == "pair":  # both ways between a and b
            x, y = names[a % len(names)], names[int(b) % len(names)]
            self.cut |= {(x, y), (y, x)}
        elif kind == "isolate":
            x = names[a % len(names)]
            self.cut |= {(x, y) for y in names} | {(y, x) for y in names}
        elif kind == "heal":
            self.cut.clear()
        elif kind == "pause":
            self.nodes[names[a % len(names)]].paused_until = t + b
        elif kind == "elect":
            order = names[a % len(names):] + names[:a % len(names)]
            k = lease.majority(len(names))
            voters = order[:k + (b % (len(names) - k + 1))]
            self.elect(t, order[0], voters)

    def owner_last_run(self):
        owner = self.nodes[self.owner]
        return self.last_deadline + (timing.REACTION + self.stop_bound) / owner.rate


EVENT = st.tuples(st.floats(0.5, 25.0), st.sampled_from(["cut", "pair", "isolate", "heal", "pause", "elect"]),
                  st.integers(0, 4), st.floats(0.2, 12.0)).map(
    lambda e: (e[0], e[1], e[2], int(e[3]) if e[1] in ("cut", "pair", "elect") else e[3]))
DRIFTS = st.floats(1 - timing.DRIFT, 1 + timing.DRIFT)
OWNER_CUT = [(2.0, "isolate", 1, 0.0)]
STALE_LEADER = [(2.0, "isolate", 0, 0.0), (2.5, "elect", 1, 0)]  # the owner n0 is the deposed leader
# the deposed leader n0 (the owner) still hears and is heard by n2, which voted for n1: only the
# terms in the echoes end its lease
STALE_MAJORITY = [(2.0, "pair", 0, 1), (2.5, "elect", 1, 0)]
# n1, cut off from both, is elected by n1 and n2; the deposed n0 still reaches the owner n2 and
# grants it leases while its own runs out: only the granter's remaining lease R caps them
STALE_GRANTER = [(2.0, "pair", 0, 1), (2.0, "pair", 1, 2), (2.5, "elect", 1, 0)]
SLOW_OWNER_FAST_LEADER = [1 + timing.DRIFT, 1 - timing.DRIFT, 1.0, 1.0, 1.0]


@contextlib.contextmanager
def no_margin():
    saved, timing.MARGIN = timing.MARGIN, 0.0
    try:
        yield
    finally:
        timing.MARGIN = saved


def timeline(n, owner, stop_bound, rates, offsets, loss, max_delay, queue_p, seed, events, until=45.0):
    return Timeline(n, owner, stop_bound, rates, offsets, loss, max_delay, queue_p, seed).run(events, until)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.sampled_from([3, 5]), owner=st.integers(0, 4), stop_bound=st.floats(0.0, 12.0),
       rates=st.lists(DRIFTS, min_size=5, max_size=5), offsets=st.lists(st.floats(0, 1e4), min_size=5, max_size=5),
       loss=st.floats(0, 0.3), max_delay=st.floats(0.001, 0.3), queue_p=st.floats(0, 0.05),
       seed=st.integers(0, 2**32), events=st.lists(EVENT, max_size=8))
@example(n=3, owner=1, stop_bound=5.0, rates=[1.0] * 5, offsets=[0.0] * 5, loss=0.0, max_delay=0.01, queue_p=0.0,
         seed=1, events=OWNER_CUT)
@example(n=3, owner=0, stop_bound=5.0, rates=[1 - timing.DRIFT, 1 + timing.DRIFT, 1.0, 1.0, 1.0], offsets=[0.0] * 5,
         loss=0.0, max_delay=0.01, queue_p=0.0, seed=1, events=STALE_LEADER)
@example(n=3, owner=0, stop_bound=2.0, rates=[1.0] * 5, offsets=[0.0] * 5, loss=0.0, max_delay=0.01, queue_p=0.0,
         seed=3, events=STALE_MAJORITY)
@example(n=3, owner=2, stop_bound=2.0, rates=[1.0] * 5, offsets=[0.0] * 5, loss=0.0, max_delay=0.01, queue_p=0.0,
         seed=3, events=STALE_GRANTER)
@example(n=3, owner=1, stop_bound=12.0, rates=SLOW_OWNER_FAST_LEADER, offsets=[5.0, 900.0, 0.0, 0.0, 0.0], loss=0.0,
         max_delay=0.0006, queue_p=0.0, seed=5, events=OWNER_CUT)
def test_the_owner_never_runs_after_the_leaders_earliest_restart(n, owner, stop_bound, rates, offsets,
                                                                  loss, max_delay, queue_p, seed, events):
    with no_margin():
        sim = timeline(n, owner % n, stop_bound, rates, offsets, loss, max_delay, queue_p, seed, events)
    if sim.restart is not None:
        assert sim.owner_last_run() < sim.restart, (sim.owner_last_run(), sim.restart)


@pytest.mark.parametrize("events,owner", [(OWNER_CUT, 1), (STALE_LEADER, 0), (STALE_MAJORITY, 0)],
                         ids=["owner-cut-off", "stale-leader", "stale-leader-with-a-majority"])
def test_the_timelines_do_restart_the_group(monkeypatch, events, owner):
    """The property is not vacuous: a cut-off owner, and a deposed leader that owns the group,
    are fenced and their group restarted within the simulated time."""
    monkeypatch.setattr(timing, "MARGIN", 0.0)
    sim = timeline(3, owner, 5.0, [1.0] * 5, [0.0] * 5, 0.0, 0.01, 0.0, 1, events)
    assert sim.restart is not None and sim.owner_last_run() < sim.restart
    assert sim.restart - sim.owner_last_run() < 2 * timing.DRIFT * (sim.lease + 6.0) + 0.8  # and not far off


# -- the books, case by case --------------------------------------------------------------------
MEMBERS3 = ["n0", "n1", "n2"]
LEADER = lease.RaftView(term=2, leader=True, leader_ready=True, applied=40)


def exchange(leader_book, peer_book, t, raft=LEADER, applied=40, lease_len=1.65):
    """peer beats at t, the leader answers at t + 0.01, the peer reads it at t + 0.02."""
    out = peer_book.begin_send(t, ["n0"], token=1.65, members=MEMBERS3)
    hb = peer_book.finish_send(out, lease.RaftView(term=2), t, members=MEMBERS3, lease=lease_len, reply=False)["n0"]
    leader_book.accept(hb, t + 0.005, lease=lease_len, applied=raft.applied)
    out = leader_book.begin_send(t + 0.01, [peer_book.name], token=1.65, members=MEMBERS3)
    answer = leader_book.finish_send(out, raft, t + 0.01, members=MEMBERS3, lease=lease_len, reply=True)
    answer = answer[peer_book.name]
    peer_book.accept(answer, t + 0.02, lease=lease_len, applied=applied)
    return answer


def books():
    return lease.LeaseBook("n0", 1), lease.LeaseBook("n1", 1), lease.LeaseBook("n2", 1)


def test_a_grant_runs_from_the_receivers_own_send_time_capped_by_the_granters_lease():
    l0, b1, b2 = books()
    exchange(l0, b2, 100.0)  # n2 echoes the leader: with the leader itself, a majority
    first = exchange(l0, b1, 100.0)
    assert first.grant is None  # the leader's own lease needs an echo of one of its own seqs first
    answer = exchange(l0, b1, 100.5)
    own = l0.own_lease(100.51, term=2, members=MEMBERS3, lease=1.65)
    assert answer.grant is not None and answer.grant.remaining == pytest.approx(own - 100.51)
    d = b1.lease_deadline(100.52, lease.RaftView(term=2, applied=40), members=MEMBERS3, lease=1.65)
    assert d == pytest.approx(100.5 + min(1.65, answer.grant.remaining)) and d <= own
    assert l0.fence_clock_start("n1") == pytest.approx(100.505)  # when it accepted what it echoed


@pytest.mark.parametrize("raft,why", [
    (lease.RaftView(term=2, leader=False, leader_ready=False, applied=40), "not the leader"),
    (lease.RaftView(term=2, leader=True, leader_ready=False, applied=40), "its term's no-op not applied yet"),
    (lease.RaftView(term=2, leader=True, leader_ready=True, applied=40, fenced=frozenset({"n1"})), "a fence names it"),
], ids=["follower", "not-ready", "fenced"])
def test_no_grant(raft, why):
    l0, b1, b2 = books()
    for t in (100.0, 100.5):
        exchange(l0, b2, t)
        answer = exchange(l0, b1, t, raft=raft)
    assert answer.grant is None, why
    assert b1.lease_deadline(101.0, lease.RaftView(term=2, applied=40), members=MEMBERS3, lease=1.65) == lease.NEVER


def test_a_grant_waits_until_the_receiver_applied_what_the_run_of_grants_asks():
    """A run of grants asks for the leader's applied index at its start: a node that comes back
    (or is no longer fenced) runs nothing on a stale state."""
    l0, b1, b2 = books()
    for t in (100.0, 100.5):
        exchange(l0, b2, t)
        answer = exchange(l0, b1, t, applied=39)
    assert answer.grant.need == 40
    stale = lease.RaftView(term=2, applied=39)
    assert b1.lease_deadline(100.6, stale, members=MEMBERS3, lease=1.65) == lease.NEVER
    caught_up = lease.RaftView(term=2, applied=40)
    assert b1.lease_deadline(100.6, caught_up, members=MEMBERS3, lease=1.65) > 100.6
    # the run restarts after a fence: the next grants ask for the index applied then
    fenced = lease.RaftView(term=2, leader=True, leader_ready=True, applied=45, fenced=frozenset({"n1"}))
    exchange(l0, b1, 101.0, raft=fenced)
    exchange(l0, b2, 101.2, raft=fenced)
    cleared = lease.RaftView(term=2, leader=True, leader_ready=True, applied=47)
    assert exchange(l0, b1, 101.4, raft=cleared).grant.need == 47


def test_the_leaders_own_lease_counts_no_echo_from_a_higher_term():
    """A peer that reports a newer term voted in (or heard of) a newer election: its echoes no
    longer renew a deposed leader's lease."""
    l0, b1, b2 = books()
    exchange(l0, b1, 100.0)
    exchange(l0, b1, 100.3)
    assert l0.own_lease(100.4, term=2, members=MEMBERS3, lease=1.65) is not None
    assert l0.own_lease(100.4, term=1, members=MEMBERS3, lease=1.65) is None  # its echoes said term 2
    assert l0.own_lease(100.4, term=2, members=MEMBERS3 + ["n3", "n4"], lease=1.65) is None  # 2 of 5


def test_the_fence_clock_starts_at_the_election_when_later_than_the_last_grant():
    l0, b1, b2 = books()
    for t in (100.0, 100.5):
        exchange(l0, b2, t)
        exchange(l0, b1, t)
    assert l0.fence_clock_start("n1") == pytest.approx(100.505)
    l0.observe_leadership(107.0, 3, True)  # re-elected in term 3: the grants of term 2 are behind it
    assert l0.fence_clock_start("n1") == 107.0 and l0.fence_clock_start("n2") == 107.0


def test_send_times_are_kept_in_order_and_bounded():
    times = lease.SendTimes()
    for seq in range(1, lease.SEND_TIMES_KEPT + 11):
        times.record(seq, float(seq))
    assert times.sent_at(10) is None and times.sent_at(11) == 11.0
    with pytest.raises(ValueError):
        times.record(5, 5.0)
    times.forget_before(100.0)
    assert times.sent_at(99) is None and times.sent_at(100) == 100.0
