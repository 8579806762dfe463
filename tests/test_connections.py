"""Connection exhaustion, from the outside: thousands of idle connections to a real daemon's
API (msgpack) and XenAPI (HTTP) do not lock out a new client, nor push the node out of Raft;
unauthenticated ones are closed at their login deadline, and one source address gets no
more than its share."""
import http.client
import resource
import selectors
import socket
import time
import xmlrpc.client

import psutil
import pytest

from clusterd import limits
from clusterd.client import Client
from conftest import running_cluster, wait_for

SOURCES = [f"127.0.0.{i}" for i in range(10, 26)]  # 16 attacking addresses
NEW = "127.0.0.2"  # the new client's source address
PER_SOURCE = 200  # below the per-source cap: together thousands of connections, all accepted
DAEMON_SOFT = 1024  # the soft descriptor limit the daemons are started with


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, xprocess):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 8000:
        pytest.skip(f"this machine allows {hard} descriptors per process; the test holds 7,000")
    # the daemons start with the usual soft limit (they raise it themselves); this process then
    # takes the hard one, for the connections it holds
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, DAEMON_SOFT), hard))
    try:
        with running_cluster(tmp_path_factory, xprocess, "conns") as c:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            yield c
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _address(cluster, node, what):
    host, port = cluster.node(node)[what].rsplit(":", 1)
    return host, int(port)


def _flood(address, sources, per_source):
    socks = []
    for src in sources:
        for _ in range(per_source):
            s = socket.socket()
            s.bind((src, 0))
            s.settimeout(10)
            s.connect(address)
            socks.append(s)
    return socks


def _closed_by_server(socks, timeout):
    """How many of socks the server closed within timeout seconds (recv gives EOF or a reset)."""
    closed = 0
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        while closed < len(socks) and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                try:
                    data = key.fileobj.recv(1)
                except ConnectionError:
                    data = b""
                if data == b"":
                    closed += 1
                    sel.unregister(key.fileobj)
    return closed


class _FromNew(xmlrpc.client.Transport):
    def make_connection(self, host):
        return http.client.HTTPConnection(host, timeout=10, source_address=(NEW, 0))


def _close(socks):
    for s in socks:
        s.close()


def _in_raft(cluster, node):
    """node applies what the cluster commits: a write through another node reaches it."""
    with cluster.client("node2") as c:
        ref = c.Cluster.get_all()[0]
        c.Cluster.add_to_other_config(ref, f"after-flood-{time.monotonic_ns()}", "x")
        target = c.Node.status()["commit_index"]
    return wait_for(lambda: cluster.node_status(node)["last_applied"] >= target, 30, what=f"{node} applies")


def test_a_daemon_raises_its_soft_descriptor_limit_to_the_hard_one(cluster):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for name in cluster.names():
        assert psutil.Process(cluster.pid(name)).rlimit(psutil.RLIMIT_NOFILE) == (hard, hard), name
    assert cluster.node_status("node1")["connections"]["api"]["cap"] == limits.caps(hard)[0]


def test_thousands_of_idle_api_connections_lock_nobody_out(cluster):
    socks = _flood(_address(cluster, "node1", "api"), SOURCES, PER_SOURCE)
    try:
        t0 = time.monotonic()
        address = _address(cluster, "node1", "api")
        creds = cluster.credentials("admin")
        with Client(cluster.node("node1")["api"], creds["user"], creds["password"], timeout=10) as c:
            c._sock.close()
            c._sock = socket.create_connection(address, timeout=10, source_address=(NEW, 0))
            status = c.Node.status()
        assert status["raft_state"] in ("leader", "follower") and status["leader"]
        print(f"a new client served in {time.monotonic() - t0:.3f} s beside {len(socks)} idle connections")
        assert _in_raft(cluster, "node1")
        # never logged in: every one is closed at its login deadline (not at once: it is a deadline)
        assert _closed_by_server(socks, limits.LOGIN_TIMEOUT + 30) == len(socks)
    finally:
        _close(socks)


def test_one_source_gets_its_share_and_no_more(cluster):
    extra = 50
    cap = cluster.node_status("node1")["connections"]["api"]["per_source_cap"]
    socks = _flood(_address(cluster, "node1", "api"), ["127.0.0.30"], cap + extra)
    try:
        assert _closed_by_server(socks, 5) >= extra
    finally:
        _close(socks)


def test_thousands_of_idle_xapi_connections_lock_nobody_out(cluster):
    socks = _flood(_address(cluster, "node1", "xapi"), SOURCES, PER_SOURCE)
    try:
        creds = cluster.credentials("reader")
        proxy = xmlrpc.client.ServerProxy(f"http://{cluster.node('node1')['xapi']}/", transport=_FromNew())
        r = proxy.session.login_with_password(creds["user"], creds["password"])
        assert r["Status"] == "Success", r
        assert _in_raft(cluster, "node1")
        assert _closed_by_server(socks, limits.LOGIN_TIMEOUT + 30) == len(socks)
    finally:
        _close(socks)


def test_a_logged_in_connection_outlives_the_login_deadline(cluster):
    with cluster.client("node1", "reader") as c:
        c.login()
        time.sleep(limits.LOGIN_TIMEOUT + 2)
        assert c.Node.status()["name"] == "node1"  # the same connection: the client does not reconnect


def test_the_gate_counts_per_source_and_in_total():
    g = limits.Gate(total=3, per_source=2)
    assert [g.admit("a"), g.admit("a"), g.admit("a"), g.admit("b"), g.admit("c")] == [True, True, False, True, False]
    g.release("a")
    assert g.admit("c") and not g.admit("b")
    assert g.stats() == {"open": 3, "cap": 3, "per_source_cap": 2, "refused": 3, "timed_out": 0}
    for source in ("a", "b", "c"):
        g.release(source)
    assert g.open == 0 and g.by_source == {}


@pytest.mark.parametrize("nofile, expected", [(1024, (256, 64)), (20000, (4096, 256)), (8, (2, 1)), (2, (1, 1))])
def test_caps_stay_well_below_the_descriptor_limit(nofile, expected):
    assert limits.caps(nofile) == expected
