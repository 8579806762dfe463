"""Pre-vote (Raft thesis §9.6): a follower cut off from the others does not raise its term, so
on its return it deposes nobody. Real daemons, a real two-way partition (network namespaces)."""
import time

import pytest

from clusterctl.lab import netns

from conftest import running_cluster, wait_for

CAPS = netns.capabilities()
pytestmark = pytest.mark.skipif(
    not (CAPS["root"] and CAPS["netns"] and CAPS["nft"]),
    reason=f"a real partition needs root, `ip netns` and nftables; this machine has {CAPS}")


def raft_view(cluster, name):
    st = cluster.node_status(name)
    return st["raft_state"], st["leader"], st["term"]


def test_a_partitioned_follower_rejoins_without_changing_leader_or_term(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "prevote", use_netns=True) as c:
        names = c.names()
        leader = wait_for(lambda: raft_view(c, names[0])[1], what="a leader")
        follower = next(n for n in names if n != leader)
        before = {n: raft_view(c, n) for n in names}
        assert len({v[2] for v in before.values()}) == 1, before  # one term everywhere
        term = before[leader][2]
        bed = c.testbed()
        index = names.index(follower)
        netns.partition(bed, [i for i in range(len(names)) if i != index], [index])
        # many election timeouts (raftMaxTimeout is 0.8 x the token timeout of 1 s), past the
        # connection timeout (4 s) after which pysyncobj drops its links and stops campaigning
        time.sleep(8)
        cut_off = raft_view(c, follower)
        netns.heal(bed)
        wait_for(lambda: all(raft_view(c, n)[1] == leader for n in names), timeout=30,
                 what="every node follows the old leader again")
        after = {n: raft_view(c, n) for n in names}
        assert cut_off[2] == term, f"the cut-off follower's term went from {term} to {cut_off[2]}"
        assert {v[2] for v in after.values()} == {term}, (before, after)
        assert after[leader][0] == "leader"
