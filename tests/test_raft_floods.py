"""The Raft port against hostile peers that hold no password (floods and exhaustion):
frames before authentication are capped low, and running out of descriptors does not take the
Raft listener away for good. Real daemons on 127.0.0.1."""
import socket
import struct
import time

import psutil
import pytest

from conftest import wait_for
from raft.durability import PREAUTH_MAX_FRAME


def raft_addr(cluster, name):
    host, port = cluster.node(name)["raft"].rsplit(":", 1)
    return host, int(port)


def closed_by_peer(sock, timeout):
    """Keep sending junk (a little at a time) until the peer closes the connection: True, or
    the timeout passes with it still open: False."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.05)
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"\0" * 1024)
            if sock.recv(1) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def in_raft(cluster, name):
    st = cluster.node_status(name)
    return st["leader"] is not None and st["raft_state"] in ("leader", "follower")


def test_a_frame_larger_than_the_preauth_cap_is_refused_at_once(cluster3):
    name = cluster3.names()[0]
    with socket.create_connection(raft_addr(cluster3, name), timeout=2) as s:
        s.sendall(struct.pack("i", 1024 * 1024))  # far below the cap for peers, far above this one
        assert closed_by_peer(s, 3.0), "an unauthenticated 1 MiB frame was buffered"
    with socket.create_connection(raft_addr(cluster3, name), timeout=2) as s:
        s.sendall(struct.pack("i", PREAUTH_MAX_FRAME - 8))  # within the cap, never completed...
        assert closed_by_peer(s, 3.0), "junk past the cap was buffered"  # ...and then more
    assert in_raft(cluster3, name)


def test_the_raft_listener_survives_running_out_of_descriptors(cluster3):
    names = cluster3.names()
    # the node with the lowest Raft address connects to nobody: every peer connects to it
    victim = min(names, key=lambda n: cluster3.node(n)["raft"])
    proc = psutil.Process(cluster3.pid(victim))
    limits = proc.rlimit(psutil.RLIMIT_NOFILE)
    junk = []
    try:
        proc.rlimit(psutil.RLIMIT_NOFILE, (proc.num_fds() + 16, limits[1]))
        for _ in range(64):
            s = socket.socket()
            s.settimeout(0.5)
            try:
                s.connect(raft_addr(cluster3, victim))
            except OSError:
                pass
            junk.append(s)
        time.sleep(1.0)  # its tick thread accepts, hits EMFILE, and (before the fix) unbinds
    finally:
        for s in junk:
            s.close()
        proc.rlimit(psutil.RLIMIT_NOFILE, limits)

    def listening():
        with socket.create_connection(raft_addr(cluster3, victim), timeout=1):
            return True
    wait_for(listening, timeout=10, what="the Raft port accepting again")
    # and it is a member still: a peer restarted must reach it (peers connect to it)
    peer = next(n for n in names if n != victim)
    cluster3.kill(peer)
    cluster3.start(peer)
    wait_for(lambda: in_raft(cluster3, peer) and in_raft(cluster3, victim), timeout=30,
             what="both in Raft")
    ref = cluster3.cluster_ref(victim)
    with cluster3.client(peer) as c:
        c.Cluster.add_to_other_config(ref, "after-emfile", "yes")
    with cluster3.client(victim) as c:
        wait_for(lambda: c.Cluster.get_other_config(ref).get("after-emfile") == "yes", timeout=20,
                 what="the write reaching the victim")


def test_reads_grow_one_buffer_in_place():
    """pysyncobj rebuilt an immutable buffer on every read (quadratic in a frame's size)."""
    from pysyncobj.poller import createPoller
    from pysyncobj.tcp_connection import TcpConnection

    from raft import durability
    durability.install()
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        conn = TcpConnection(poller=createPoller("auto"), socket=b, recvBufferSize=64 * 1024)
        conn._clusterd_authenticated = b  # as after its first frame decrypted
        a.sendall(struct.pack("i", 4 * 1024 * 1024))
        conn._TcpConnection__processRead()
        first = conn._TcpConnection__readBuffer
        for _ in range(16):
            a.sendall(b"\0" * 64 * 1024)
            while conn._TcpConnection__processRead():
                pass
        assert conn._TcpConnection__readBuffer is first
        assert len(first) == 4 + 16 * 64 * 1024
    finally:
        a.close()
        b.close()
