"""Membership against real daemons on loopback: a paused node and its queued heartbeats, a
flood of junk at a heartbeat port, a restarted node."""
import signal
import subprocess
import sys
import time

from conftest import wait_for

FLOOD_SECONDS = 5.0
FLOOD_MAX_PACKETS = 3_000_000  # per flooder
FLOODERS = 2

FLOODER = r"""
import os, socket, sys, time
host, port, seconds, most = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
junk = [os.urandom(n) for n in (33, 40, 48, 64)] * 64
end, sent, send = time.monotonic() + seconds, 0, s.send
while sent < most and time.monotonic() < end:
    for j in junk:
        try:
            send(j)
        except OSError:
            pass
    sent += len(junk)
print(sent)
"""


def statuses(c, names):
    out = {}
    for n in names:
        try:
            out[n] = c.node_status(n)
        except OSError:
            out[n] = None
    return out


def test_a_resumed_node_does_not_take_its_queued_heartbeats_for_fresh(cluster3):
    """SIGSTOP node3 for several tokens while its peers beat into its socket; stop the peers too
    (so that nothing fresh can answer it), then SIGCONT node3: the heartbeats it reads are
    stale, so it reports neither quorum nor a lease."""
    c = cluster3
    wait_for(lambda: all(s and s["is_quorate"] and s["lease"] > 0 for s in statuses(c, c.names()).values()),
             timeout=30, what="every node quorate and holding a lease")
    token = c.node_status("node3")["effective_token"]
    c.kill("node3", signal.SIGSTOP)
    stopped = ["node3"]
    try:
        time.sleep(3 * token)
        for peer in ("node1", "node2"):
            c.kill(peer, signal.SIGSTOP)
            stopped.append(peer)
        c.kill("node3", signal.SIGCONT)
        stopped.remove("node3")
        seen = []
        end = time.monotonic() + token
        while time.monotonic() < end:
            s = c.node_status("node3")
            seen.append((s["is_quorate"], s["live"], s["lease"]))
            time.sleep(0.05)
    finally:
        for name in stopped:
            c.kill(name, signal.SIGCONT)
    assert len(seen) >= 3
    assert all(q is False and live == ["node3"] and lease == 0 for q, live, lease in seen), seen
    wait_for(lambda: c.node_status("node3")["is_quorate"], timeout=30, what="node3 quorate again")


def test_a_flood_of_junk_at_a_heartbeat_port_leaves_the_node_live(cluster3):
    """A flood of junk datagrams (no valid HMAC: anyone on the network can send them) at node2's
    heartbeat port, bounded in count and time: its peers keep counting it live throughout, and
    node2 counts what it rejected, by reason."""
    c = cluster3
    wait_for(lambda: all(s and s["live_hosts"] == 3 for s in statuses(c, c.names()).values()),
             timeout=30, what="every node sees three live")
    host, port = c.node("node2")["heartbeat"].rsplit(":", 1)
    flooders = [subprocess.Popen([sys.executable, "-c", FLOODER, host, port, str(FLOOD_SECONDS),
                                  str(FLOOD_MAX_PACKETS)], stdout=subprocess.PIPE, text=True)
                for _ in range(FLOODERS)]
    seen = []
    try:
        time.sleep(0.5)
        while any(f.poll() is None for f in flooders):
            for peer in ("node1", "node3"):
                seen.append((peer, "node2" in c.node_status(peer)["live"]))
            time.sleep(0.1)
    finally:
        for f in flooders:
            if f.poll() is None:
                f.kill()
        sent = sum(int(f.communicate(timeout=10)[0] or 0) for f in flooders)
    print(f"flood: {sent} datagrams in {FLOOD_SECONDS} s; {len(seen)} samples")
    assert sent > 10_000 and len(seen) >= 10
    assert all(live for _, live in seen), [s for s in seen if not s[1]]
    rejected = c.node_status("node2")["heartbeat_rejected"]
    assert rejected.get("mac", 0) + rejected.get("size", 0) > 1000, rejected


def test_a_restarted_node_is_accepted_by_its_peers(cluster3):
    """A restarted daemon takes the next incarnation from its data dir: its peers, which
    remember the old one, count it live again."""
    c = cluster3
    wait_for(lambda: c.node_status("node1")["live_hosts"] == 3, timeout=30, what="three live")
    for _ in range(2):
        c.kill("node2")
        wait_for(lambda: c.node_status("node1")["live_hosts"] == 2, timeout=30, what="node2 seen gone")
        c.start("node2")
        wait_for(lambda: all(s and s["live_hosts"] == 3 for s in statuses(c, c.names()).values()),
                 timeout=30, what="node2 live again in every view")
