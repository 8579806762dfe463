"""Real partitions: each node in its own network namespace, faults as nftables rules (root)."""
import time

import pytest

from clusterctl.lab import netns
from clusterd.errors import ClusterError

from conftest import running_cluster, wait_for

CAPS = netns.capabilities()
pytestmark = pytest.mark.skipif(
    not (CAPS["root"] and CAPS["netns"] and CAPS["nft"]),
    reason=f"the network-namespace testbed needs root, `ip netns` and nftables; this machine has {CAPS}")


@pytest.fixture
def bed_cluster(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "netns", use_netns=True) as c:
        yield c


def views(cluster):
    out = {}
    for name in cluster.names():
        try:
            st = cluster.node_status(name)
            out[name] = (st["is_quorate"], st["live_hosts"])
        except (OSError, ClusterError):
            out[name] = None
    return out


def test_a_minority_loses_quorum_and_the_majority_keeps_it_then_heals(bed_cluster):
    bed = bed_cluster.testbed()
    ref = bed_cluster.cluster_ref()
    netns.partition(bed, [0, 1], [2])
    want = {"node1": (True, 2), "node2": (True, 2), "node3": (False, 1)}
    wait_for(lambda: views(bed_cluster) == want, what="quorum follows the partition")
    with bed_cluster.client("node3") as c:
        with pytest.raises(ClusterError) as err:
            c.Cluster.add_to_other_config(ref, "minority", "write")
        assert err.value.code == "CLUSTER_NOT_QUORATE"
    with bed_cluster.client("node1") as c:
        c.Cluster.add_to_other_config(ref, "majority", "write")
    netns.heal(bed)
    wait_for(lambda: views(bed_cluster) == {n: (True, 3) for n in bed_cluster.names()}, what="healed")
    with bed_cluster.client("node3") as c:
        wait_for(lambda: c.Cluster.get_other_config(ref) == {"majority": "write"}, what="node3 caught up")


def test_one_way_loss_and_a_link_down(bed_cluster):
    bed = bed_cluster.testbed()
    netns.drop(bed, 2, 0)  # node1 no longer hears node3; node3 still hears node1
    wait_for(lambda: views(bed_cluster)["node1"] == (True, 2), what="node1 stops hearing node3")
    # contact counts both ways (a round trip): node3 stops counting node1 at the same time
    wait_for(lambda: views(bed_cluster)["node3"] == (True, 2), what="node3 stops counting node1")
    netns.heal(bed)
    netns.link(bed, 1, False)  # node2 cut off entirely
    wait_for(lambda: views(bed_cluster)["node1"] == (True, 2), what="node1 sees node2 gone")
    netns.heal(bed)
    wait_for(lambda: views(bed_cluster) == {n: (True, 3) for n in bed_cluster.names()}, what="healed")


def test_teardown_removes_every_namespace_and_the_bridge(tmp_path):
    bed = netns.plan(str(tmp_path), 2)
    netns.setup(bed)
    assert netns.exists(bed)
    netns.teardown(bed)
    assert not netns.exists(bed)
    listed = netns.run("ip", "netns", "list").stdout.split()
    assert not [n for n in bed["nodes"] if n["ns"] in listed]


def ports(cluster, service):
    return [int(n[service].rpartition(":")[2]) for n in cluster.meta()["nodes"]]


def cut_service(cluster, node, service, proto):
    """node's `service` traffic dropped both ways; everything else left flowing."""
    bed, port = cluster.testbed(), ports(cluster, service)
    for other in range(len(port)):
        if other != node:
            netns.drop_port(bed, node, other, proto, port[node], port[other])
            netns.drop_port(bed, other, node, proto, port[other], port[node])


def test_a_heartbeat_only_cut_takes_quorum_away_while_raft_still_replicates(bed_cluster):
    ref = bed_cluster.cluster_ref()
    cut_service(bed_cluster, 2, "heartbeat", "udp")
    wait_for(lambda: views(bed_cluster)["node3"] == (False, 1), what="node3 hears no heartbeat")
    with bed_cluster.client("node1") as c:
        c.Cluster.add_to_other_config(ref, "during", "hb-cut")
    with bed_cluster.client("node3") as c:  # Raft still reaches it: it applies what the majority commits
        wait_for(lambda: c.Cluster.get_other_config(ref).get("during") == "hb-cut", what="node3 replicated")
    netns.heal(bed_cluster.testbed())
    wait_for(lambda: views(bed_cluster) == {n: (True, 3) for n in bed_cluster.names()}, what="healed")


def test_a_raft_only_cut_leaves_the_heartbeats_and_stops_replication(bed_cluster):
    ref = bed_cluster.cluster_ref()
    with bed_cluster.client("node1") as c:
        leader = c.Node.status().get("leader")
    cut = next(i for i, n in enumerate(bed_cluster.names()) if n != leader)
    name = bed_cluster.names()[cut]
    cut_service(bed_cluster, cut, "raft", "tcp")
    writer = next(n for n in bed_cluster.names() if n not in (name,))
    with bed_cluster.client(writer) as c:
        wait_for(lambda: _wrote(c, ref), what="a write by the majority during the Raft cut")
    time.sleep(2.0)  # a connected follower applies a commit within one Raft round (well under this)
    assert views(bed_cluster)[name] == (True, 3)  # its heartbeats still flow both ways
    with bed_cluster.client(name) as c:
        assert c.Cluster.get_other_config(ref).get("during") != "raft-cut"  # no Raft: not replicated
        netns.heal(bed_cluster.testbed())
        wait_for(lambda: c.Cluster.get_other_config(ref).get("during") == "raft-cut", what="caught up after the heal")


def _wrote(client, ref):
    try:
        client.Cluster.add_to_other_config(ref, "during", "raft-cut")
        return True
    except ClusterError:
        return False
