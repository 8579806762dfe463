"""The no-quorum policy: what an owner left alone (no quorum, no lease) does with its group.

stop (the default) stops it; freeze keeps what runs and starts nothing, not even a restart;
ignore keeps running and restarting as if quorate (demos only). Real daemons: the two other
nodes are killed, so the owner is alone.
"""
import signal
import sys
import time

import psutil
import pytest

from clusterctl.lab.witness import read_witness

from conftest import gone, running_cluster, wait_for


def starts(witness):
    return [r for r in read_witness(witness) if r["event"] == "start"]


@pytest.mark.parametrize("policy", ["stop", "freeze", "ignore"])
def test_an_owner_left_alone_follows_its_no_quorum_policy(tmp_path_factory, xprocess, tmp_path, policy):
    witness = str(tmp_path / "witness.jsonl")
    with running_cluster(tmp_path_factory, xprocess, settings={"no_quorum_policy": policy}) as cluster:
        with cluster.client("node1") as c:
            c.Group.create("g")
            c.Group.set_preferred_owners("g", ["node3"])
            c.Resource.create("g", "g-sleeper", "process", {
                "args": [sys.executable, "-c", "import time; time.sleep(600)"], "witness": witness,
                "stop_timeout": 3})
            c.Resource.set_restart_policy("g-sleeper", {"monitor_interval": 0.2, "delay": 0.1})
            assert c.Operation.wait(c.Group.online("g")["handle"], 60)["status"] == "succeeded"
            pid = c.Group.get_record("g")["resources"][0]["pid"]
        cluster.kill("node1")
        cluster.kill("node2")
        wait_for(lambda: cluster.node_status("node3")["is_quorate"] is False, what="node3 not quorate")
        if policy == "stop":
            wait_for(lambda: gone(pid), timeout=30, what="the resource stopped")
            return
        time.sleep(cluster.node_status("node3")["effective_token"] + 2)
        assert not gone(pid), f"{policy}: the resource must keep running without quorum"
        psutil.Process(pid).kill()  # the resource dies while node3 is alone
        wait_for(lambda: gone(pid), what="the resource process gone")
        if policy == "freeze":
            time.sleep(3)
            assert len(starts(witness)) == 1, "freeze: nothing is started, not even a restart"
        else:
            wait_for(lambda: len(starts(witness)) == 2, what="ignore: restarted without quorum")
        cluster.start("node1")
        cluster.start("node2")
        wait_for(lambda: cluster.node_status("node3")["is_quorate"], timeout=60, what="quorum again")
        wait_for(lambda: len(starts(witness)) >= 2, timeout=30, what="running again with quorum")
