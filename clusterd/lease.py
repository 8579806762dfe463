"""The lease by round trip: pure bookkeeping of heartbeats, their echoes and the leases granted
with them (docs/timing.md has the model and its proof).

No clock and no I/O: every method is given `now`, the monotonic clock of the node it runs on,
and every instant it stores is one of this node's own readings. membership.py feeds it the
heartbeats it sends and accepts; the property test drives the same code over random timelines.

- Every heartbeat carries the sender's seq; the sender remembers when it sent each one
  (`SendTimes`). A heartbeat echoes the receiver's newest seq that the sender accepted, so the
  receiver learns, on its own clock, a moment (the send time) after which the sender was
  alive and heard it. Delay, reordering or a queue of stale packets can only make that moment
  older, never newer.
- A peer is live while it echoed one of our seqs sent within the effective token.
- The Raft leader's own lease runs for LEASE from the instant a strict majority of the members
  (itself counted now) had echoed one of its seqs, counting only echoes whose senders report a
  Raft term no higher than its own.
- The leader grants a lease with its echo to a live peer that no committed fence names: the
  grant carries the leader's remaining lease R and the log index the receiver must have
  applied. The receiver's lease then runs until its own send time of the echoed seq +
  min(LEASE, R): it never outlives the granter's.
- `fence_clock_start` is where the leader's fence wait starts for a peer: when it accepted the
  heartbeat its latest grant to the peer echoed (that heartbeat's send time, where the lease
  starts, came before), or its own election if later.
"""
import collections
import dataclasses
import math
from typing import Iterable

SEND_TIMES_KEPT = 16384  # own send times remembered at most (seqs older than the token are useless)
NEVER = float("-inf")


def majority(n_members: int) -> int:
    """A strict majority of the members: Raft's quorum, so that it meets every election's."""
    return n_members // 2 + 1


class SendTimes:
    """This node's send instants of its own seqs 1, 2, 3, ... (consecutive), the newest kept."""

    def __init__(self) -> None:
        self.first = 1  # the seq of times[0]
        self.times: collections.deque = collections.deque()

    def record(self, seq: int, t: float) -> None:
        if seq != self.first + len(self.times):
            raise ValueError(f"seq {seq} out of order (next is {self.first + len(self.times)})")
        self.times.append(t)
        if len(self.times) > SEND_TIMES_KEPT:
            self.times.popleft()
            self.first += 1

    def sent_at(self, seq: int) -> float | None:
        i = seq - self.first
        return self.times[i] if 0 <= i < len(self.times) else None

    def forget_before(self, t: float) -> None:
        while self.times and self.times[0] < t:
            self.times.popleft()
            self.first += 1


@dataclasses.dataclass
class Peer:
    """What this node knows of one peer, all on this node's clock."""
    newest: tuple = (-1, -1)  # (incarnation, seq) of its newest heartbeat accepted here
    heard_at: float = NEVER  # when we accepted it
    echo_at: float = NEVER  # our send time of the newest of our seqs it echoed
    term: int = 0  # the highest Raft term it reported
    lease: float = NEVER  # the latest lease deadline it granted us, honoured
    pending: tuple | None = None  # (deadline, need): a grant waiting for our log to reach need
    last_grant: float = NEVER  # when we accepted the heartbeat our latest grant to it echoes
    need: int | None = None  # the applied index our current run of grants to it asks for


@dataclasses.dataclass(frozen=True)
class RaftView:
    """What the books need of Raft, read by the caller after the echoes it sends."""
    term: int = 0
    leader: bool = False  # Raft says this node is the leader
    leader_ready: bool = False  # ... and it has applied its own term's first entry
    applied: int = 0  # the index of the last entry applied here
    fenced: frozenset = frozenset()  # nodes a committed fence record (requested or fenced) names


@dataclasses.dataclass(frozen=True)
class Grant:
    remaining: float  # the granter's own lease left when it granted, seconds
    need: int  # the log index the receiver must have applied


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """A heartbeat being sent, between begin_send and finish_send."""
    seq: int
    now: float  # its send time
    echoes: dict
    live: list


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """The content of one heartbeat, as membership signs and sends it."""
    sender: str
    incarnation: int
    seq: int
    term: int
    echo: tuple | None  # (incarnation, seq) of the receiver's newest heartbeat we accepted
    grant: Grant | None
    reply: bool  # an answer to a heartbeat: not to be answered itself


class LeaseBook:
    """One node's round-trip books. Not thread-safe: membership holds its lock around calls."""

    def __init__(self, name: str, incarnation: int) -> None:
        self.name = name
        self.incarnation = incarnation
        self.seq = 0
        self.sent = SendTimes()
        self.peers: dict[str, Peer] = {}
        self.leader_term: int | None = None  # the term in which we last saw ourselves leader
        self.leader_since = NEVER  # when we first saw ourselves leader in it

    def peer(self, name: str) -> Peer:
        p = self.peers.get(name)
        if p is None:
            p = self.peers[name] = Peer()
        return p

    # -- sending -------------------------------------------------------------------------
    def next_seq(self, now: float, horizon: float) -> int:
        """A new seq, sent at `now` (read before the packet leaves: never later than the send)."""
        self.seq += 1
        self.sent.record(self.seq, now)
        self.sent.forget_before(now - horizon)
        return self.seq

    def echo_for(self, peer: str) -> tuple | None:
        """The peer's newest heartbeat we accepted (it must be read before our Raft term)."""
        p = self.peers.get(peer)
        return p.newest if p is not None and p.newest[1] >= 0 else None

    def observe_leadership(self, now: float, term: int, leader: bool) -> None:
        """Note when this node became leader in `term` (`now` read after Raft said so)."""
        if leader and self.leader_term != term:
            self.leader_term, self.leader_since = term, now
            for p in self.peers.values():
                p.last_grant, p.need = NEVER, None

    def grant_for(self, peer: str, now: float, raft: RaftView, *, live: Iterable[str], members: list[str],
                  lease: float) -> Grant | None:
        """The grant to send `peer` with our echo, or None. Only the Raft leader that has applied
        its own term's first entry (observed: observe_leadership), holds its own lease, counts
        the peer live and has no fence of it committed, grants. A run of grants to a peer asks
        for the applied index at its start, and restarts whenever the peer was not live or
        fenced: so the peer runs nothing until it has applied what was committed meanwhile."""
        p = self.peer(peer)
        if not (raft.leader and raft.leader_ready and self.leader_term == raft.term):
            return None
        if peer not in live or peer in raft.fenced or self.echo_for(peer) is None:
            p.need = None
            return None
        own = self.own_lease(now, term=raft.term, members=members, lease=lease)
        if own is None:
            return None
        if p.need is None:
            p.need = raft.applied
        # the lease this grant gives runs from the peer's send time of the heartbeat we echo,
        # which came before we accepted it: that instant bounds it (on our clock)
        p.last_grant = max(p.last_grant, p.heard_at)
        return Grant(own - now, p.need)

    def begin_send(self, now: float, names: list[str], *, token: float, members: Iterable[str]) -> Outgoing:
        """Step 1 of sending: a new seq sent at `now` and the echoes for `names`. Then the
        caller reads Raft (its term must be read after the echoes: docs/timing.md), then
        its clock again, and calls finish_send."""
        seq = self.next_seq(now, horizon=2 * token + 1.0)
        return Outgoing(seq, now, {n: self.echo_for(n) for n in names}, self.live(now, token, members))

    def finish_send(self, out: Outgoing, raft: RaftView, observed: float, *, members: list[str], lease: float,
                    reply: bool) -> dict:
        """Step 2: {name: Heartbeat} for the names of begin_send, with their grants. `observed`
        is the clock read after `raft` (a leadership is noted no earlier than Raft said so)."""
        self.observe_leadership(observed, raft.term, raft.leader)
        return {n: Heartbeat(self.name, self.incarnation, out.seq, raft.term, echo,
                             self.grant_for(n, out.now, raft, live=out.live, members=members, lease=lease), reply)
                for n, echo in out.echoes.items()}

    # -- receiving -----------------------------------------------------------------------
    def accept(self, hb: Heartbeat, now: float, *, lease: float, applied: int) -> str | None:
        """Take a verified heartbeat from a member; the reason it is rejected, or None."""
        p = self.peer(hb.sender)
        if (hb.incarnation, hb.seq) <= p.newest:
            return "replay"
        p.newest, p.heard_at = (hb.incarnation, hb.seq), now
        p.term = max(p.term, hb.term)
        if hb.echo is None or hb.echo[0] != self.incarnation:
            return None
        sent = self.sent.sent_at(hb.echo[1])
        if sent is None:
            return None  # older than anything we keep, or a seq we never sent
        p.echo_at = max(p.echo_at, sent)
        if hb.grant is not None:
            deadline = sent + min(lease, hb.grant.remaining)
            if applied >= hb.grant.need:
                p.lease = max(p.lease, deadline)
            elif p.pending is None or deadline > p.pending[0]:
                p.pending = (deadline, hb.grant.need)
        return None

    # -- reading -------------------------------------------------------------------------
    def live(self, now: float, token: float, members: Iterable[str]) -> list[str]:
        """Ourselves and the members that echoed a seq of ours sent within the token."""
        return sorted({m for m in members if m in self.peers and now - self.peers[m].echo_at <= token}
                      | {self.name})

    def own_lease(self, now: float, *, term: int, members: list[str], lease: float) -> float | None:
        """The leader's own lease deadline: LEASE after the newest instant by which a strict
        majority of the members echoed us (ourselves now), counting only peers whose reported
        term is not above ours. None if there is no such majority, or it ran out."""
        echoes = [now] + [self.peers[m].echo_at for m in members
                          if m != self.name and m in self.peers and self.peers[m].term <= term]
        k = majority(len(members) if self.name in members else len(members) + 1)
        if len(echoes) < k:
            return None
        deadline = sorted(echoes, reverse=True)[k - 1] + lease
        return deadline if deadline > now else None

    def lease_deadline(self, now: float, raft: RaftView, *, members: list[str], lease: float) -> float:
        """Until when this node holds its lease: its own as a ready leader, or the latest a
        leader granted it whose log index it has applied; NEVER if none."""
        best = NEVER
        for p in self.peers.values():
            if p.pending is not None and raft.applied >= p.pending[1]:
                p.lease, p.pending = max(p.lease, p.pending[0]), None
            best = max(best, p.lease)
        if raft.leader and raft.leader_ready and self.name not in raft.fenced:
            own = self.own_lease(now, term=raft.term, members=members, lease=lease)
            if own is not None:
                best = max(best, own)
        return best

    def fence_clock_start(self, peer: str) -> float:
        """Where the leader's fence wait for `peer` starts: when it accepted the heartbeat that its
        latest grant (this term) echoed, or its own election if later (every lease an earlier
        leader granted ends within LEASE of it)."""
        return max(self.leader_since, self.peer(peer).last_grant)


def valid_grant(remaining, need) -> bool:
    """A grant's fields as they may come off the wire."""
    return (isinstance(remaining, float) and math.isfinite(remaining) and remaining > 0
            and isinstance(need, int) and need >= 0)
