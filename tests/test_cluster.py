"""A real cluster: real clusterd processes on 127.0.0.1, real kill -9, real restarts."""
import asyncio
import os
import signal
import subprocess
import sys

import pytest

from clusterd.client import AsyncClient
from clusterd.errors import ClusterError

from conftest import wait_for


def other_config(cluster, name):
    with cluster.client(name) as c:
        return c.Cluster.get_other_config(c.Cluster.get_all()[0])


def reports(cluster, name, **expected):
    st = cluster.node_status(name)
    return all(st[k] == v for k, v in expected.items())


def test_a_write_through_any_node_is_read_back_from_every_node(cluster3):
    ref = cluster3.cluster_ref()
    for name in cluster3.names():
        with cluster3.client(name) as c:
            c.Cluster.add_to_other_config(ref, f"via-{name}", name)
    want = {f"via-{n}": n for n in cluster3.names()}
    for name in cluster3.names():
        wait_for(lambda: other_config(cluster3, name) == want, what=f"{name} reads every write")


def test_kill_one_then_two_then_rejoin(cluster3):
    ref = cluster3.cluster_ref()
    with cluster3.client("node1") as c:
        c.Cluster.add_to_other_config(ref, "before", "kills")

    cluster3.kill("node3")
    for name in ("node1", "node2"):
        wait_for(lambda: reports(cluster3, name, live_hosts=2, is_quorate=True), what=f"{name}: live_hosts 2, quorate")

    cluster3.kill("node2")
    wait_for(lambda: reports(cluster3, "node1", live_hosts=1, is_quorate=False), what="node1 alone: not quorate")
    with cluster3.client("node1") as c:
        index = c.Node.status()["commit_index"]
        with pytest.raises(ClusterError) as err:
            c.Cluster.add_to_other_config(ref, "alone", "refused")
        assert err.value.code == "CLUSTER_NOT_QUORATE"
        assert c.Cluster.get_other_config(ref) == {"before": "kills"}
        assert c.Node.status()["commit_index"] == index

    cluster3.start("node2")
    cluster3.start("node3")
    for name in cluster3.names():
        wait_for(lambda: reports(cluster3, name, live_hosts=3, is_quorate=True), what=f"{name} rejoined")
        wait_for(lambda: other_config(cluster3, name) == {"before": "kills"}, what=f"{name} caught up")
    with cluster3.client("node2") as c:
        c.Cluster.add_to_other_config(ref, "after", "rejoin")
    wait_for(lambda: other_config(cluster3, "node3") == {"before": "kills", "after": "rejoin"})


def test_every_acknowledged_write_survives_kill_9_of_all_nodes(cluster3):
    ref = cluster3.cluster_ref()
    creds = cluster3.credentials()

    async def write_many():
        acked = []
        clients = [AsyncClient(cluster3.node(n)["api"], creds["user"], creds["password"]) for n in cluster3.names()]
        try:
            async def one(i):
                c = clients[i % len(clients)]
                await c.Cluster.add_to_other_config(ref, f"k{i}", str(i))
                acked.append(f"k{i}")
            results = await asyncio.gather(*(one(i) for i in range(300)), return_exceptions=True)
        finally:
            for c in clients:
                await c.close()
        assert not [r for r in results if isinstance(r, Exception)]
        return acked

    acked = asyncio.run(write_many())
    assert len(acked) == 300
    pids = [cluster3.pid(n) for n in cluster3.names()]
    for pid in pids:  # as close to "at once" as signals get
        os.kill(pid, signal.SIGKILL)
    for name in cluster3.names():
        wait_for(lambda: cluster3.pid(name) is None, what=f"{name} dead")
    for name in cluster3.names():
        cluster3.start(name)
    cluster3.wait_quorate(60)
    for name in cluster3.names():
        got = wait_for(lambda: other_config(cluster3, name) if len(other_config(cluster3, name)) >= 300 else None,
                       what=f"{name} replayed its journal")
        assert set(acked) <= set(got)


def test_five_nodes_survive_two_losses_not_three(make_cluster):
    cluster = make_cluster(5)
    cluster.kill("node5")
    cluster.kill("node4")
    for name in ("node1", "node2", "node3"):
        wait_for(lambda: reports(cluster, name, live_hosts=3, is_quorate=True), what=f"{name}: 3 live, quorate")
    ref = cluster.cluster_ref()
    with cluster.client("node2") as c:
        c.Cluster.add_to_other_config(ref, "three", "of five")
    cluster.kill("node3")
    for name in ("node1", "node2"):
        wait_for(lambda: reports(cluster, name, live_hosts=2, is_quorate=False), what=f"{name}: not quorate")
    with cluster.client("node1") as c:
        with pytest.raises(ClusterError) as err:
            c.Cluster.add_to_other_config(ref, "two", "of five")
        assert err.value.code == "CLUSTER_NOT_QUORATE"


def test_a_member_joins_and_leaves_through_the_log(cluster3):
    """Raft dynamic membership, one change at a time; quorum follows the committed members."""
    st = cluster3.status()
    leader = st["cluster"]["leader"]
    entry = cluster3.add_node_entry("node4", cluster3.meta()["nodes"])
    with cluster3.client(leader) as c:
        c.Node.add("node4", entry["raft"], entry["heartbeat"], entry["api"])
        with pytest.raises(ClusterError) as err:  # the same name twice
            c.Node.add("node4", entry["raft"], entry["heartbeat"], entry["api"])
        assert err.value.code == "INVALID_VALUE"
    cluster3.start("node4")
    for name in cluster3.names():
        wait_for(lambda: reports(cluster3, name, live_hosts=4, is_quorate=True, ready=True), what=f"{name} sees 4 live")
    ref = cluster3.cluster_ref()
    with cluster3.client("node4") as c:
        c.Cluster.add_to_other_config(ref, "from", "node4")
        hosts = c.Cluster.get_cluster_hosts(ref)
        assert len(hosts) == 4  # pool_auto_join made its Cluster_host
    wait_for(lambda: other_config(cluster3, "node1") == {"from": "node4"})

    with cluster3.client(leader) as c:
        c.Node.remove("node4")
    cluster3.kill("node4", signal.SIGTERM)
    cluster3.forget_node_entry("node4")
    for name in cluster3.names():
        wait_for(lambda: reports(cluster3, name, live_hosts=3, expected_votes=3, is_quorate=True),
                 what=f"{name} back to 3 members")


@pytest.mark.parametrize("token", [None, b"short"])
def test_the_daemon_refuses_to_start_without_a_token(cluster3, tmp_path, token):
    node = cluster3.node("node1")
    token_file = tmp_path / "token"
    if token is not None:
        token_file.write_bytes(token)
    r = subprocess.run([sys.executable, "-m", "clusterd", "--config", node["config"], "--token-file", str(token_file),
                        "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "token" in r.stderr
    assert not (tmp_path / "data").exists()
