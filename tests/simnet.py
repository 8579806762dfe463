"""A simulated network of real Membership objects on one fake clock, for pure-speed tests of the
daemon's own heartbeat, lease and fence code: no sockets, no threads, no sleeps.

Each node is a real `membership.Membership`; its socket is replaced by one that hands packets to
the simulated network, which delivers them after a delay unless a one-way cut drops them; a
paused node (SIGSTOP) neither beats nor reads, and its packets queue until it resumes.
"""
import dataclasses
import types

from clusterd import membership

TOKEN = b"a-cluster-token-of-some-length"


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def monotonic(self) -> float:
        return self.t


@dataclasses.dataclass
class Raft:
    """What the heartbeat thread reads of Raft, set by the test."""
    term: int = 1
    leader: bool = False
    applied: int = 10
    fenced: frozenset = frozenset()


class SimSocket:
    def __init__(self, net: "Net", name: str) -> None:
        self.net, self.name = net, name

    def sendto(self, packet: bytes, addr) -> None:
        self.net.send(self.name, self.net.by_addr[addr], packet)


class Net:
    def __init__(self, names, token_timeout=1.0, coefficient=0.65, delay=0.001, clock=None):
        self.clock = clock or Clock()
        self.delay = delay
        self.members = {n: {"heartbeat": f"127.0.0.1:{7200 + i}", "votes": 1} for i, n in enumerate(names)}
        self.by_addr = {("127.0.0.1", 7200 + i): n for i, n in enumerate(names)}
        self.cut = set()  # (src, dst) pairs whose packets are dropped
        self.paused = set()
        self.queue = []  # (deliver_at, dst, src, packet)
        self.raft = {n: Raft() for n in names}
        self.nodes = {}
        self.next_beat = {}
        for n in names:
            m = _membership(n, token_timeout, coefficient, lambda: self.members, self.raft[n])
            m.sock = SimSocket(self, n)
            self.nodes[n] = m
            self.next_beat[n] = self.clock.t
        self.interval = token_timeout / 4
        self.params = (token_timeout, coefficient)

    def restart(self, name: str, data_dir: str) -> None:
        """The node's daemon restarts: a new Membership (a new incarnation), its queue lost."""
        m = _membership(name, *self.params, lambda: self.members, self.raft[name], data_dir)
        m.sock = SimSocket(self, name)
        self.nodes[name] = m
        self.queue = [p for p in self.queue if p[1] != name]

    def send(self, src: str, dst: str, packet: bytes) -> None:
        if (src, dst) not in self.cut:
            self.queue.append((self.clock.t + self.delay, dst, src, packet))

    def step(self, dt: float) -> None:
        """Advance the clock by dt: deliver what is due, beat whoever's interval came."""
        self.clock.t += dt
        due = [p for p in self.queue if p[0] <= self.clock.t and p[1] not in self.paused]
        self.queue = [p for p in self.queue if p not in due]
        for _, dst, src, packet in sorted(due, key=lambda p: p[0]):
            self.nodes[dst].datagram_received(packet, ("127.0.0.1", 0))
        for n, m in self.nodes.items():
            if n not in self.paused and self.clock.t >= self.next_beat[n]:
                m.beat()
                self.next_beat[n] = self.clock.t + self.interval

    def run(self, seconds: float, dt: float = 0.01, each=None) -> None:
        end = self.clock.t + seconds
        while self.clock.t < end:
            self.step(dt)
            if each is not None:
                each()


def _membership(name, token_timeout, coefficient, members, raft, data_dir=None):
    kwargs = dict(name=name, token=TOKEN, token_timeout=token_timeout, coefficient=coefficient, members=members)
    if data_dir is not None:
        kwargs["incarnation"] = membership.next_incarnation(data_dir)
    kwargs["raft"] = lambda: membership.RaftView(term=raft.term, leader=raft.leader, leader_ready=raft.leader,
                                                 applied=raft.applied, fenced=raft.fenced)
    return membership.Membership(**kwargs)


def patch_clock(monkeypatch, clock: Clock, *modules) -> None:
    """These modules see the simulated clock as time.monotonic (and nothing else changes)."""
    import time
    for module in modules:
        monkeypatch.setattr(module, "time", types.SimpleNamespace(
            monotonic=clock.monotonic, time=time.time, time_ns=time.time_ns, sleep=time.sleep))
