"""Membership: HMAC-signed UDP heartbeats, each node's own live view, and its lease.

Every member sends a heartbeat to every other member each token/4, and answers each heartbeat
it accepts at once with a reply (which is not answered). A heartbeat is msgpack
[version, sender, incarnation, seq, term, flags, echo, grant] followed by HMAC-SHA256 over those
bytes, keyed from the cluster token:

- incarnation: a counter persisted in the data dir, one more at every start (never the wall
  clock, which may step back); seq: one more at every heartbeat sent.
- term: the sender's Raft term, read after the echo was chosen (docs/timing.md says why).
- flags: bit 0 set on a reply.
- echo: [incarnation, seq] of the receiver's newest heartbeat that the sender accepted, or nil.
- grant: [remaining, need] when the sender, as Raft leader, grants the receiver a lease with
  this echo, or nil (lease.py).

A receiver accepts a heartbeat only if the MAC checks, the sender is another member, and
(incarnation, seq) is newer than anything it accepted from that sender, so a replayed packet
changes nothing. The books (lease.LeaseBook) are on this node's monotonic clock only: a peer is
live while it echoed one of our seqs sent within the effective token, which counts contact only
both ways, and which stale or queued packets (a node resumed after SIGSTOP reads its queue
oldest first) can never make fresh. Rejected datagrams are counted by reason.

Heartbeats are sent and received on a thread of their own, as corosync runs apart from the
resource manager: a daemon whose event loop is busy for a moment still beats. The thread reads
at most RECEIVE_BUDGET datagrams between two looks at its beat clock, so a flood of junk cannot
silence it. The loop reads the view and the lease.
"""
import asyncio
import collections
import hashlib
import hmac
import logging
import os
import select
import socket
import threading
import time
from typing import Callable

import msgpack

from . import lease, quorum, timing
from .lease import Grant, Heartbeat, RaftView

log = logging.getLogger("clusterd.membership")

VERSION = 3
MAC_LEN = 32
MAX_DATAGRAM = 1400
MAX_NAME = 255
VIEW_CACHE = 0.01  # seconds
RECEIVE_BUDGET = 256  # datagrams read between two looks at the beat clock
REPLY = 1
INCARNATION_FILE = "heartbeat.incarnation"
REASONS = ("size", "mac", "format", "self", "stranger", "replay")

__all__ = ["Membership", "RaftView", "next_incarnation", "start", "encode", "decode", "verify"]


def heartbeat_key(token: bytes) -> bytes:
    return hashlib.sha256(b"clusterd heartbeat v1\0" + token).digest()


def sign(key: bytes, payload: bytes) -> bytes:
    return payload + hmac.new(key, payload, hashlib.sha256).digest()


def encode(key: bytes, hb: Heartbeat) -> bytes:
    grant = [float(hb.grant.remaining), hb.grant.need] if hb.grant is not None else None
    echo = list(hb.echo) if hb.echo is not None else None
    return sign(key, msgpack.packb([VERSION, hb.sender, hb.incarnation, hb.seq, hb.term,
                                    REPLY if hb.reply else 0, echo, grant]))


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def decode(key: bytes, packet: bytes) -> Heartbeat | str:
    """The heartbeat in a datagram, or the reason it is rejected ("size", "mac", "format")."""
    if len(packet) <= MAC_LEN or len(packet) > MAX_DATAGRAM:
        return "size"
    payload, mac = packet[:-MAC_LEN], packet[-MAC_LEN:]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        return "mac"
    try:
        msg = msgpack.unpackb(payload, raw=False)
    except Exception:
        return "format"
    if not (isinstance(msg, list) and len(msg) == 8 and msg[0] == VERSION):
        return "format"
    _, sender, incarnation, seq, term, flags, echo, grant = msg
    if not (isinstance(sender, str) and 0 < len(sender) <= MAX_NAME and all(map(_count, (incarnation, seq, term, flags)))):
        return "format"
    if echo is not None and not (isinstance(echo, list) and len(echo) == 2 and all(map(_count, echo))):
        return "format"
    if grant is not None and not (isinstance(grant, list) and len(grant) == 2 and echo is not None
                                  and lease.valid_grant(*grant)):
        return "format"
    return Heartbeat(sender, incarnation, seq, term, tuple(echo) if echo is not None else None,
                     Grant(*grant) if grant is not None else None, bool(flags & REPLY))


def verify(key: bytes, packet: bytes) -> Heartbeat | None:
    """The heartbeat in a datagram, or None if it is not a valid one."""
    hb = decode(key, packet)
    return hb if isinstance(hb, Heartbeat) else None


def next_incarnation(data_dir: str) -> int:
    """One more than the number stored in DATA_DIR/heartbeat.incarnation (1 at the first start),
    stored back and fsynced before it is used. A damaged file is refused: starting over at 1
    would make every peer reject this node's heartbeats as replays."""
    path = os.path.join(data_dir, INCARNATION_FILE)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = "0"
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise ValueError(f"{path}: not a heartbeat incarnation counter ({text[:40]!r}); "
                         "restore it, or remove it only once every peer has restarted")
    value = int(text) + 1
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, str(value).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return value


class Membership:
    """members() -> {name: {"heartbeat": "host:port", "votes": int}} is read on every beat,
    so members added or removed through the log are picked up without a restart; raft() ->
    RaftView is read after the echoes of every heartbeat sent. The heartbeat thread and the
    event loop share the books under self.lock."""

    def __init__(self, name: str, token: bytes, token_timeout: float, coefficient: float,
                 members: Callable[[], dict], on_change=None, incarnation: int = 1,
                 raft: Callable[[], RaftView] | None = None) -> None:
        self.name = name
        self.key = heartbeat_key(token)
        self.token_timeout = float(token_timeout)
        self.coefficient = float(coefficient)
        self.members = members
        self.raft = raft or RaftView
        self.on_change = on_change
        self.incarnation = incarnation
        self.book = lease.LeaseBook(name, incarnation)
        self.rejected: collections.Counter = collections.Counter()  # reason -> datagrams
        self.sock = None  # the bound UDP socket, once serving
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._view = None
        self._cached = None

    # -- measuring -------------------------------------------------------------------------
    def view(self) -> dict:
        """This node's view; recomputed at most every VIEW_CACHE seconds (writes ask often)."""
        now = time.monotonic()
        cached = self._cached
        if cached is None or now - cached[0] > VIEW_CACHE:
            members = self.members()  # outside self.lock: it reads the database
            with self.lock:
                live = self.book.live(time.monotonic(), self.effective_token(members), members)
            votes = {n: m.get("votes", 1) for n, m in members.items()}
            cached = self._cached = (now, quorum.view(list(members), votes, live))
        return cached[1]

    def effective_token(self, members=None) -> float:
        return quorum.effective_token(self.token_timeout, self.coefficient, len(members or self.members()))

    def lease_length(self, members=None) -> float:
        return timing.lease_length(self.effective_token(members))

    def lease_deadline(self) -> float:
        """The monotonic instant until which this node holds its lease (0.0: it holds none)."""
        members = self.members()
        raft = self.raft()
        with self.lock:
            d = self.book.lease_deadline(time.monotonic(), raft, members=list(members),
                                         lease=self.lease_length(members))
        return max(d, 0.0)

    def fence_clock_start(self, down: str) -> float | None:
        """Where this leader's fence wait for `down` starts (lease.py); None if not the leader."""
        raft = self.raft()
        now = time.monotonic()  # read after Raft said "leader": never before the election
        with self.lock:
            self.book.observe_leadership(now, raft.term, raft.leader)
            return self.book.fence_clock_start(down) if raft.leader else None

    def rejected_counts(self) -> dict:
        return {r: self.rejected.get(r, 0) for r in REASONS}

    # -- receiving and sending -------------------------------------------------------------
    def datagram_received(self, data: bytes, addr=None) -> None:
        hb = decode(self.key, data)
        if isinstance(hb, str):
            self.rejected[hb] += 1
            return
        members = self.members()
        if hb.sender == self.name or hb.sender not in members:
            self.rejected["self" if hb.sender == self.name else "stranger"] += 1
            return
        applied = self.raft().applied
        with self.lock:
            reason = self.book.accept(hb, time.monotonic(), lease=self.lease_length(members), applied=applied)
        if reason is not None:
            self.rejected[reason] += 1
            return
        if not hb.reply and self.sock is not None:
            self._send([hb.sender], members, reply=True)  # the round trip: answer at once
        self._check_change()

    def beat(self) -> None:
        members = self.members()
        self._send([n for n in members if n != self.name], members, reply=False)
        self._check_change()

    def _send(self, names: list, members: dict, reply: bool) -> None:
        if not names:
            return
        token = self.effective_token(members)
        now = time.monotonic()  # read before anything is sent: a send time is never late
        with self.lock:
            out = self.book.begin_send(now, names, token=token, members=members)
        raft = self.raft()  # after the echoes: the term we report was read after them
        observed = time.monotonic()
        with self.lock:
            beats = self.book.finish_send(out, raft, observed, members=list(members),
                                          lease=timing.lease_length(token), reply=reply)
        for n, hb in beats.items():
            host, port = members[n]["heartbeat"].rsplit(":", 1)
            try:
                self.sock.sendto(encode(self.key, hb), (host, int(port)))
            except OSError:
                pass  # a peer that is gone (ICMP unreachable): expected

    def _check_change(self) -> None:
        self._cached = None  # a heartbeat or a token run out: look afresh
        v = self.view()
        key = (tuple(v["live"]), v["is_quorate"])
        if key != self._view:
            old, self._view = self._view, key
            log.info("membership %s: live %s, quorate %s", self.name, v["live"], v["is_quorate"])
            if self.on_change is not None and old is not None:
                self.on_change(v)

    # -- the heartbeat thread --------------------------------------------------------------
    def serve(self) -> None:
        """Beat every token/4; receive meanwhile (at most RECEIVE_BUDGET datagrams between two
        looks at the beat clock), and look four times between beats for peers whose token ran
        out. Runs until stop(); an error is logged, never fatal."""
        interval = self.token_timeout / 4
        next_beat = time.monotonic()
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_beat:
                    self.beat()
                    next_beat = now + interval
                select.select([self.sock], [], [], max(0.0, min(next_beat - now, interval / 4)))
                for _ in range(RECEIVE_BUDGET):
                    try:
                        data, addr = self.sock.recvfrom(MAX_DATAGRAM + 1)
                    except BlockingIOError:
                        break
                    except OSError:
                        continue  # an ICMP error from an earlier send
                    self.datagram_received(data, addr)
                    if self._stop.is_set() or time.monotonic() >= next_beat:
                        break
                self._check_change()
            except Exception:
                log.exception("heartbeat thread: step failed")
                time.sleep(interval / 4)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve on the heartbeat thread for as long as this task runs."""
        thread = threading.Thread(target=self.serve, name="clusterd-heartbeat", daemon=True)
        thread.start()
        try:
            await asyncio.Event().wait()
        finally:
            self.stop()


def start(bind: str, **kwargs) -> Membership:
    """A Membership on a UDP socket bound to HOST:PORT (run() serves it)."""
    host, port = bind.rsplit(":", 1)
    m = Membership(**kwargs)
    m.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    m.sock.bind((host, int(port)))
    m.sock.setblocking(False)
    return m
