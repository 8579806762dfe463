"""Membership: HMAC-signed UDP heartbeats and each node's own live view.

Every member sends a heartbeat to every other member each token/4. A heartbeat is
msgpack [version, sender, incarnation, seq] followed by HMAC-SHA256 over those bytes, keyed
from the cluster token. A receiver accepts it only if the MAC checks, the sender is a member,
and (incarnation, seq) is newer than anything it accepted from that sender, so a replayed
packet does not make a dead node look alive. A peer is live while it was heard within the
effective token.
"""
import asyncio
import hashlib
import hmac
import logging
import time

import msgpack

from . import quorum

log = logging.getLogger("clusterd.membership")

VERSION = 1
MAC_LEN = 32
MAX_DATAGRAM = 512
VIEW_CACHE = 0.01  # seconds


def heartbeat_key(token):
    return hashlib.sha256(b"clusterd heartbeat v1\0" + token).digest()


def sign(key, payload):
    return payload + hmac.new(key, payload, hashlib.sha256).digest()


def verify(key, packet):
    """Return the decoded [version, sender, incarnation, seq] or None."""
    if len(packet) <= MAC_LEN or len(packet) > MAX_DATAGRAM:
        return None
    payload, mac = packet[:-MAC_LEN], packet[-MAC_LEN:]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        return None
    try:
        msg = msgpack.unpackb(payload, raw=False)
    except Exception:
        return None
    if (not isinstance(msg, list) or len(msg) != 4 or msg[0] != VERSION
            or not isinstance(msg[1], str) or not all(isinstance(x, int) for x in msg[2:])):
        return None
    return msg


class Membership(asyncio.DatagramProtocol):
    """members() -> {name: {"heartbeat": "host:port", "votes": int}} is read on every beat,
    so members added or removed through the log are picked up without a restart."""

    def __init__(self, name, token, token_timeout, coefficient, members, on_change=None):
        self.name = name
        self.key = heartbeat_key(token)
        self.token_timeout = float(token_timeout)
        self.coefficient = float(coefficient)
        self.members = members
        self.on_change = on_change
        self.incarnation = time.time_ns()
        self.seq = 0
        self.last_heard = {}  # name -> monotonic time of the last good heartbeat
        self.newest = {}  # name -> (incarnation, seq)
        self.rejected = 0
        self.transport = None
        self._view = None
        self._cached = None

    # -- measuring -------------------------------------------------------------------------
    def effective_token(self):
        return quorum.effective_token(self.token_timeout, self.coefficient, len(self.members()))

    def view(self):
        """This node's view; recomputed at most every VIEW_CACHE seconds (writes ask often)."""
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > VIEW_CACHE:
            self._cached = (now, self._compute_view())
        return self._cached[1]

    def _compute_view(self):
        members = self.members()
        live = quorum.live_members(
            {n: t for n, t in self.last_heard.items() if n in members},
            time.monotonic(), self.effective_token(), self.name)
        votes = {n: m.get("votes", 1) for n, m in members.items()}
        return quorum.view(list(members), votes, live)

    # -- the socket ------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        msg = verify(self.key, data)
        if msg is None or msg[1] == self.name or msg[1] not in self.members():
            self.rejected += 1
            return
        _, sender, incarnation, seq = msg
        if (incarnation, seq) <= self.newest.get(sender, (0, -1)):
            self.rejected += 1
            return
        self.newest[sender] = (incarnation, seq)
        self.last_heard[sender] = time.monotonic()
        self._check_change()

    def error_received(self, exc):
        pass  # ICMP unreachable from a dead peer: expected, nothing to do

    def beat(self):
        self.seq += 1
        packet = sign(self.key, msgpack.packb([VERSION, self.name, self.incarnation, self.seq]))
        for name, m in self.members().items():
            if name == self.name:
                continue
            host, port = m["heartbeat"].rsplit(":", 1)
            try:
                self.transport.sendto(packet, (host, int(port)))
            except OSError:
                pass
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

    async def run(self):
        """Beat every token/4; between beats, look four times for peers whose token ran out."""
        interval = self.token_timeout / 4
        while True:
            self.beat()
            for _ in range(4):
                await asyncio.sleep(interval / 4)
                self._check_change()


async def start(loop, bind, **kwargs):
    host, port = bind.rsplit(":", 1)
    proto = Membership(**kwargs)
    await loop.create_datagram_endpoint(lambda: proto, local_addr=(host, int(port)))
    return proto
