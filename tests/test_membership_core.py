"""Membership without real sockets: the heartbeat thread under a flood, rejected datagrams by
reason, and the incarnation that survives a wall clock stepped back."""
import asyncio
import threading
import time
import types

import msgpack
import pytest

from clusterd import membership
from clusterd.lease import Grant, Heartbeat

from simnet import TOKEN, Net, patch_clock

MEMBERS = {"node1": {"heartbeat": "127.0.0.1:7200", "votes": 1},
           "node2": {"heartbeat": "127.0.0.1:7201", "votes": 1},
           "node3": {"heartbeat": "127.0.0.1:7202", "votes": 1}}


class FloodedSocket:
    """Always readable, always junk: a flood faster than the node can read."""

    def __init__(self):
        self.sent = 0
        self.received = 0

    def recvfrom(self, size):
        self.received += 1
        return b"\x00" * 64, ("127.0.0.1", 9999)

    def recv(self, size):
        self.received += 1
        return b"\x00" * 64

    def sendto(self, packet, addr):
        self.sent += 1

    def fileno(self):
        return -1


def test_a_flood_of_junk_does_not_stop_the_heartbeats(monkeypatch):
    """The heartbeat thread bounds the datagrams it reads between beats: an endless stream of
    junk (no valid HMAC needed) must not silence the node."""
    monkeypatch.setattr(membership, "select", types.SimpleNamespace(select=lambda r, w, x, t: (r, [], [])))
    m = membership.Membership("node1", TOKEN, 0.2, 0.0, lambda: MEMBERS)
    sock = m.sock = FloodedSocket()
    thread = threading.Thread(target=m.serve, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # five token intervals of 0.2 s: some 20 beats to each of 2 peers
    finally:
        m.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert sock.received > 1000  # it did read the flood...
    assert sock.sent >= 2 * 5  # ...and went on beating, to both peers
    assert sum(m.rejected.values()) >= sock.received - 1 and m.rejected.get("mac", 0) > 1000


def test_the_incarnation_is_a_persisted_counter(tmp_path):
    """Each start takes the next number, stored (fsynced) in the data dir, never the wall clock."""
    first = membership.next_incarnation(str(tmp_path))
    second = membership.next_incarnation(str(tmp_path))
    third = membership.next_incarnation(str(tmp_path))
    assert first < second < third
    path = tmp_path / membership.INCARNATION_FILE
    assert int(path.read_text()) == third
    assert path.stat().st_mode & 0o077 == 0  # not readable by others


@pytest.mark.parametrize("content", ["", "abc", "-5", "1e9", "12 13", "9" * 40])
def test_a_damaged_incarnation_file_is_refused_with_a_clear_error(tmp_path, content):
    """Starting over at 1 would make the peers reject this node (they remember a higher one)."""
    (tmp_path / membership.INCARNATION_FILE).write_text(content)
    with pytest.raises(ValueError, match="incarnation"):
        membership.next_incarnation(str(tmp_path))
    assert (tmp_path / membership.INCARNATION_FILE).read_text() == content


def test_a_node_restarted_with_its_wall_clock_stepped_back_is_accepted(monkeypatch, tmp_path):
    """Its peers remember its old incarnation; the new one must be larger whatever the wall
    clock says."""
    net = Net(["node1", "node2", "node3"])
    patch_clock(monkeypatch, net.clock, membership)
    wall = {"ns": 2_000_000_000_000_000_000}
    monkeypatch.setattr(membership.time, "time_ns", lambda: wall["ns"])
    net.restart("node2", str(tmp_path))
    net.run(3.0)
    assert net.nodes["node1"].view()["live"] == ["node1", "node2", "node3"]
    wall["ns"] -= 3600 * 10**9  # NTP stepped the clock back an hour; node2 restarts
    net.restart("node2", str(tmp_path))
    net.run(3.0)
    for name in ("node1", "node3"):
        assert net.nodes[name].view()["live"] == ["node1", "node2", "node3"], name


# -- the wire ---------------------------------------------------------------------------------
KEY = membership.heartbeat_key(TOKEN)


def raw(msg, key=KEY):
    return membership.sign(key, msgpack.packb(msg))


def good(**over):
    fields = dict(sender="node2", incarnation=5, seq=7, term=3, echo=(1, 4), grant=Grant(1.5, 12), reply=False)
    fields.update(over)
    return Heartbeat(**fields)


@pytest.mark.parametrize("hb", [good(), good(echo=None, grant=None), good(grant=None, reply=True)],
                         ids=["grant", "bare", "reply"])
def test_encode_decode_round_trip(hb):
    assert membership.decode(KEY, membership.encode(KEY, hb)) == hb
    assert membership.verify(KEY, membership.encode(KEY, hb)) == hb


def test_heartbeat_key_depends_on_the_token():
    assert membership.heartbeat_key(b"one") != membership.heartbeat_key(b"two")
    assert len(KEY) == 32


GOOD = membership.encode(KEY, good())
V = membership.VERSION
BAD = [
    ("size", b""), ("size", GOOD[-32:]), ("size", b"x" * (membership.MAX_DATAGRAM + 1)),
    ("mac", GOOD[:-1] + bytes([GOOD[-1] ^ 1])), ("mac", bytes([GOOD[0] ^ 1]) + GOOD[1:]), ("mac", GOOD[:-1]),
    ("mac", GOOD[1:]), ("mac", membership.encode(membership.heartbeat_key(b"another-token"), good())),
    ("format", membership.sign(KEY, b"\xc1\xc1")), (
        "format", membership.sign(KEY, msgpack.packb([V, "node2", 5, 7, 3, 0, None, None]) + b"\x00")),
    ("format", raw([2, "node2", 123, 7, ["node1"]])),  # the previous version
    ("format", raw([V + 1, "node2", 5, 7, 3, 0, None, None])),
    ("format", raw({"v": V})), ("format", raw("node2")), ("format", raw([V, "node2", 5, 7, 3, 0, None])),
    ("format", raw([V, "node2", 5, 7, 3, 0, None, None, 1])), ("format", raw([V, 2, 5, 7, 3, 0, None, None])),
    ("format", raw([V, "", 5, 7, 3, 0, None, None])), ("format", raw([V, "n" * 256, 5, 7, 3, 0, None, None])),
    ("format", raw([V, "node2", "5", 7, 3, 0, None, None])), ("format", raw([V, "node2", 5, 7.0, 3, 0, None, None])),
    ("format", raw([V, "node2", 5, -7, 3, 0, None, None])), ("format", raw([V, "node2", 5, 7, True, 0, None, None])),
    ("format", raw([V, "node2", 5, 7, 3, 0, [1], None])), ("format", raw([V, "node2", 5, 7, 3, 0, [1, "2"], None])),
    ("format", raw([V, "node2", 5, 7, 3, 0, None, [1.0, 2]])),  # a grant needs its echo
    ("format", raw([V, "node2", 5, 7, 3, 0, [1, 2], [float("nan"), 2]])),
    ("format", raw([V, "node2", 5, 7, 3, 0, [1, 2], [float("inf"), 2]])),
    ("format", raw([V, "node2", 5, 7, 3, 0, [1, 2], [-1.0, 2]])),
    ("format", raw([V, "node2", 5, 7, 3, 0, [1, 2], [0.0, 2]])),
    ("format", raw([V, "node2", 5, 7, 3, 0, [1, 2], [1, 2]])),  # remaining must be a float
    ("format", raw([V, "node2", 5, 7, 3, 0, [1, 2], [1.0, -2]])),
    ("format", raw([V, "node2", 5, 7, 3, 0, [1, 2], [1.0]])),
]


@pytest.mark.parametrize("reason,data", BAD, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD)])
def test_decode_names_the_reason(reason, data):
    assert membership.decode(KEY, data) == reason
    assert membership.verify(KEY, data) is None


def test_decode_size_limit_is_inclusive():
    """A signed datagram of exactly MAX_DATAGRAM bytes passes the size check; one byte more not."""
    at_limit = membership.sign(KEY, b"\x00" * (membership.MAX_DATAGRAM - membership.MAC_LEN))
    over = membership.sign(KEY, b"\x00" * (membership.MAX_DATAGRAM + 1 - membership.MAC_LEN))
    assert len(at_limit) == membership.MAX_DATAGRAM and membership.decode(KEY, at_limit) == "format"
    assert membership.decode(KEY, over) == "size"


# -- receiving --------------------------------------------------------------------------------
class Sink:
    def __init__(self):
        self.sent = []

    def sendto(self, packet, addr):
        self.sent.append((membership.decode(KEY, packet), addr))


def node1(monkeypatch, clock, members=None, raft=None):
    patch_clock(monkeypatch, clock, membership)
    current = {"m": dict(members or MEMBERS)}
    m = membership.Membership("node1", TOKEN, 1.0, 0.65, lambda: current["m"], incarnation=9,
                              raft=raft)
    m.sock = Sink()
    return m, current


def hb(sender, incarnation, seq, echo=None, grant=None, term=1, reply=True, key=KEY):
    return membership.encode(key, Heartbeat(sender, incarnation, seq, term, echo, grant, reply))


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def monotonic(self):
        return self.t


def test_accepts_newer_and_rejects_replays_and_old_incarnations(monkeypatch):
    clock = Clock()
    m, _ = node1(monkeypatch, clock)
    m.datagram_received(hb("node2", 5, 1))
    assert m.book.peers["node2"].newest == (5, 1) and sum(m.rejected.values()) == 0
    for replay in (hb("node2", 5, 1), hb("node2", 5, 0), hb("node2", 4, 99)):
        m.datagram_received(replay)
    assert m.rejected_counts()["replay"] == 3 and m.book.peers["node2"].newest == (5, 1)
    m.datagram_received(hb("node2", 6, 0))  # restarted: the next incarnation, seq from 0
    m.datagram_received(hb("node2", 5, 3))  # a late beat of the old incarnation
    assert m.rejected_counts()["replay"] == 4 and m.book.peers["node2"].newest == (6, 0)
    m.datagram_received(hb("node3", 1, 1))  # replay state is per sender
    assert m.rejected_counts()["replay"] == 4


@pytest.mark.parametrize("data,reason", [
    (hb("node1", 5, 1), "self"), (hb("stranger", 5, 1), "stranger"),
    (hb("node2", 5, 1, key=membership.heartbeat_key(b"some-other-cluster-token")), "mac"),
    (b"\x00" * 40, "mac"), (b"\x00" * 10, "size"), (hb("node2", 5, 1) + b"\x00", "mac"),
], ids=["self", "stranger", "wrong-token", "zeros", "short", "trailing-byte"])
def test_rejects_are_counted_by_reason_and_change_nothing(monkeypatch, data, reason):
    m, _ = node1(monkeypatch, Clock())
    m.datagram_received(data)
    assert m.rejected_counts() == {r: int(r == reason) for r in membership.REASONS}
    assert m.book.peers == {} and m.sock.sent == [] and m.view()["live"] == ["node1"]


def test_a_beat_is_answered_at_once_with_its_echo_and_a_reply_is_not(monkeypatch):
    m, _ = node1(monkeypatch, Clock())
    m.datagram_received(hb("node2", 5, 1, reply=False))
    (answer, addr), = m.sock.sent
    assert addr == ("127.0.0.1", 7201) and answer.reply and answer.echo == (5, 1) and answer.incarnation == 9
    assert answer.grant is None  # not the leader
    m.datagram_received(hb("node2", 5, 2, reply=True))
    assert len(m.sock.sent) == 1


def test_a_peer_is_live_while_it_echoed_a_seq_sent_within_the_token(monkeypatch):
    """Contact counts only both ways, and only from our own send times: a peer that we hear
    but that does not echo us is not live; a late echo of an old seq is old."""
    clock = Clock()
    m, _ = node1(monkeypatch, clock)
    m.datagram_received(hb("node2", 5, 1))  # heard, but it echoes nothing of ours
    assert m.view()["live"] == ["node1"] and not m.view()["is_quorate"]
    m.beat()  # our seq 1 at t = 1000
    clock.t += 0.2
    m.datagram_received(hb("node2", 5, 2, echo=(9, 1)))
    assert m.view()["live"] == ["node1", "node2"] and m.view()["is_quorate"]
    clock.t += 1.0
    m.datagram_received(hb("node3", 1, 1, echo=(9, 1)))  # echoes the same old seq, 1.2 s later
    assert m.view()["live"] == ["node1", "node2", "node3"]
    clock.t += 0.46  # 1.66 s after seq 1 was sent: past the effective token of 1.65 s
    m._check_change()
    assert m.view()["live"] == ["node1"]
    m.datagram_received(hb("node2", 5, 3, echo=(8, 1)))  # an echo of another incarnation of ours
    assert m.view()["live"] == ["node1"]


def test_view_follows_the_members_callable(monkeypatch):
    clock = Clock()
    m, current = node1(monkeypatch, clock)
    m.beat()
    m.datagram_received(hb("node4", 1, 1, echo=(9, 1)))
    assert m.rejected_counts()["stranger"] == 1
    current["m"] = dict(MEMBERS, node4={"heartbeat": "127.0.0.1:7299", "votes": 1})
    m.datagram_received(hb("node4", 1, 1, echo=(9, 1)))
    assert "node4" in m.view()["live"]
    current["m"] = dict(MEMBERS)
    clock.t += membership.VIEW_CACHE * 2
    assert "node4" not in m.view()["live"] and m.view()["expected_votes"] == 3


def test_on_change_reports_live_and_quorum(monkeypatch):
    clock = Clock()
    changes = []
    m, _ = node1(monkeypatch, clock)
    m.on_change = changes.append
    m._check_change()  # the first view is the baseline, not a change
    m.beat()
    m.datagram_received(hb("node2", 1, 1, echo=(9, 1)))
    assert [(c["live"], c["is_quorate"]) for c in changes] == [(["node1", "node2"], True)]
    m.datagram_received(hb("node2", 1, 2, echo=(9, 1)))
    assert len(changes) == 1
    clock.t += 1.7
    m._check_change()
    assert [(c["live"], c["is_quorate"]) for c in changes][-1] == (["node1"], False)


def test_effective_token_and_lease_length_track_the_member_count():
    current = {"m": dict(MEMBERS)}
    m = membership.Membership("node1", TOKEN, 1.0, 0.65, lambda: current["m"])
    assert m.effective_token() == pytest.approx(1.65) and m.lease_length() == pytest.approx(1.65)
    current["m"] = {n: MEMBERS[n] for n in ("node1", "node2")}
    assert m.effective_token() == pytest.approx(1.0)


def test_heartbeats_go_on_while_the_event_loop_is_busy():
    """The heartbeat thread beats whatever the daemon's event loop does: a loop blocked for
    three tokens does not make its node look dead to a peer."""
    from clusterctl.lab.launcher import free_ports
    a_port, b_port = free_ports(0, 2)
    members = {"a": {"heartbeat": f"127.0.0.1:{a_port}"}, "b": {"heartbeat": f"127.0.0.1:{b_port}"}}
    a = membership.start(f"127.0.0.1:{a_port}", name="a", token=TOKEN, token_timeout=0.4, coefficient=0.0,
                         members=lambda: members)
    b = membership.start(f"127.0.0.1:{b_port}", name="b", token=TOKEN, token_timeout=0.4, coefficient=0.0,
                         members=lambda: members)
    seen = []

    async def main():
        task = asyncio.ensure_future(a.run())
        await asyncio.sleep(0.5)
        time.sleep(1.2)  # the loop is blocked for three tokens
        await asyncio.sleep(0)
        task.cancel()
    watcher = threading.Thread(target=b.serve, daemon=True)
    watcher.start()
    deadline = time.monotonic() + 0.5
    try:
        loop_thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        loop_thread.start()
        while loop_thread.is_alive():
            if time.monotonic() > deadline:
                seen.append("a" in b.view()["live"])
            time.sleep(0.05)
    finally:
        b.stop()
        a.stop()
        watcher.join(2)
        a.sock.close()
        b.sock.close()
    assert len(seen) > 10 and all(seen), seen
