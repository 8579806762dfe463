"""Membership: HMAC-signed UDP heartbeats and each node's own live view.

Every member sends a heartbeat to every other member each token/4. A heartbeat is
msgpack [version, sender, incarnation, seq, heard] followed by HMAC-SHA256 over those bytes,
keyed from the cluster token; `heard` names the members the sender itself heard within the
effective token. A receiver accepts it only if the MAC checks, the sender is a member, and
(incarnation, seq) is newer than anything it accepted from that sender, so a replayed packet
does not make a dead node look alive.

A peer is live while a heartbeat that names this node as heard arrived within the effective
token: contact counts only both ways. So a node whose traffic is cut in one direction drops out
of both sides' views, as a corosync ring would drop it. A node that can send but hears nobody is
not counted live by the others (they fence it and restart its groups), and a node that hears
everyone but cannot be heard loses quorum and its lease, and stops its groups.

Heartbeats are sent and received on a thread of their own, as corosync runs apart from the
resource manager: a daemon whose event loop is busy for a moment (a burst of 10,000 groups)
still beats, so it is not suspected and fenced for being slow. The loop reads the view.
"""
import asyncio
import hashlib
import hmac
import logging
import select
import socket
import threading
import time

import msgpack

from . import quorum

log = logging.getLogger("clusterd.membership")

VERSION = 2
MAC_LEN = 32
MAX_DATAGRAM = 1400
MAX_HEARD = 64
VIEW_CACHE = 0.01  # seconds


def heartbeat_key(token):
    return hashlib.sha256(b"clusterd heartbeat v1\0" + token).digest()


def sign(key, payload):
    return payload + hmac.new(key, payload, hashlib.sha256).digest()


def verify(key, packet):
    """Return the decoded [version, sender, incarnation, seq, heard] or None."""
    if len(packet) <= MAC_LEN or len(packet) > MAX_DATAGRAM:
        return None
    payload, mac = packet[:-MAC_LEN], packet[-MAC_LEN:]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        return None
    try:
        msg = msgpack.unpackb(payload, raw=False)
    except Exception:
        return None
    if (not isinstance(msg, list) or len(msg) != 5 or msg[0] != VERSION or not isinstance(msg[1], str)
            or not all(isinstance(x, int) for x in msg[2:4]) or not isinstance(msg[4], list)
            or len(msg[4]) > MAX_HEARD or not all(isinstance(x, str) for x in msg[4])):
        return None
    return msg


class Membership:
    """members() -> {name: {"heartbeat": "host:port", "votes": int}} is read on every beat,
    so members added or removed through the log are picked up without a restart. The
    heartbeat thread and the event loop share the measurements under self.lock."""

    def __init__(self, name, token, token_timeout, coefficient, members, on_change=None):
        self.name = name
        self.key = heartbeat_key(token)
        self.token_timeout = float(token_timeout)
        self.coefficient = float(coefficient)
        self.members = members
        self.on_change = on_change
        self.incarnation = time.time_ns()
        self.seq = 0
        self.last_heard = {}  # name -> monotonic time of its last heartbeat that said it hears us
        self.last_received = {}  # name -> monotonic time of its last good heartbeat of any kind
        self.newest = {}  # name -> (incarnation, seq)
        self.rejected = 0
        self.sock = None  # the bound UDP socket, once serving
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._view = None
        self._cached = None

    # -- measuring -------------------------------------------------------------------------
    def view(self):
        """This node's view; recomputed at most every VIEW_CACHE seconds (writes ask often)."""
        now = time.monotonic()
        cached = self._cached
        if cached is None or now - cached[0] > VIEW_CACHE:
            members = self.members()  # outside self.lock: it reads the database
            with self.lock:
                heard = {n: t for n, t in self.last_heard.items() if n in members}
            live = quorum.live_members(heard, time.monotonic(), self.effective_token(members), self.name)
            votes = {n: m.get("votes", 1) for n, m in members.items()}
            cached = self._cached = (now, quorum.view(list(members), votes, live))
        return cached[1]

    def effective_token(self, members=None):
        return quorum.effective_token(self.token_timeout, self.coefficient, len(members or self.members()))

    # -- receiving and sending -------------------------------------------------------------
    def datagram_received(self, data, addr):
        msg = verify(self.key, data)
        members = self.members()
        if msg is None or msg[1] == self.name or msg[1] not in members:
            self.rejected += 1
            return
        _, sender, incarnation, seq, heard = msg
        token = self.effective_token(members)
        with self.lock:
            if (incarnation, seq) <= self.newest.get(sender, (0, -1)):
                self.rejected += 1
                return
            now = time.monotonic()
            new_peer = now - self.last_received.get(sender, float("-inf")) > token
            self.newest[sender] = (incarnation, seq)
            self.last_received[sender] = now
            if self.name in heard:
                self.last_heard[sender] = now
        if new_peer and self.sock is not None:
            self.beat()  # tell it at once that we hear it: a (re)joining node is counted a beat sooner
        self._check_change()

    def heard(self):
        """The members this node received a heartbeat from within the effective token."""
        now, token = time.monotonic(), self.effective_token()
        with self.lock:
            return sorted(n for n, t in self.last_received.items() if now - t <= token)[:MAX_HEARD]

    def beat(self):
        self.seq += 1
        packet = sign(self.key, msgpack.packb([VERSION, self.name, self.incarnation, self.seq, self.heard()]))
        for name, m in self.members().items():
            if name == self.name:
                continue
            host, port = m["heartbeat"].rsplit(":", 1)
            try:
                self.sock.sendto(packet, (host, int(port)))
            except OSError:
                pass  # a peer that is gone (ICMP unreachable): expected
        self._check_change()

    def _check_change(self):
        self._cached = None  # a heartbeat or a token run out: look afresh
        v = self.view()
        key = (tuple(v["live"]), v["is_quorate"])
        if key != self._view:
            old, self._view = self._view, key
            log.info("membership %s: live %s, quorate %s", self.name, v["live"], v["is_quorate"])
            if self.on_change is not None and old is not None:
                self.on_change(v)

    # -- the heartbeat thread --------------------------------------------------------------
    def serve(self):
        """Beat every token/4; receive meanwhile, and look four times between beats for peers
        whose token ran out. Runs until stop(); an error is logged, never fatal."""
        interval = self.token_timeout / 4
        next_beat = time.monotonic()
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_beat:
                    self.beat()
                    next_beat = now + interval
                readable, _, _ = select.select([self.sock], [], [], max(0.0, min(next_beat - now, interval / 4)))
                while readable:
                    try:
                        data, addr = self.sock.recvfrom(MAX_DATAGRAM + 1)
                    except BlockingIOError:
                        break
                    except OSError:
                        continue  # an ICMP error from an earlier send
                    self.datagram_received(data, addr)
                self._check_change()
            except Exception:
                log.exception("heartbeat thread: step failed")
                time.sleep(interval / 4)

    def stop(self):
        self._stop.set()

    async def run(self):
        """Serve on the heartbeat thread for as long as this task runs."""
        thread = threading.Thread(target=self.serve, name="clusterd-heartbeat", daemon=True)
        thread.start()
        try:
            await asyncio.Event().wait()
        finally:
            self.stop()


def start(bind, **kwargs):
    """A Membership on a UDP socket bound to HOST:PORT (run() serves it)."""
    host, port = bind.rsplit(":", 1)
    m = Membership(**kwargs)
    m.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    m.sock.bind((host, int(port)))
    m.sock.setblocking(False)
    return m
