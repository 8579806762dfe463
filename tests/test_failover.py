"""Failover that never runs a group twice: real daemons, real kills, real partitions."""
import signal
import sys

import pytest

from clusterctl.lab import netns
from clusterctl.lab.witness import double_online, read_witness
from clusterctl.lab.launcher import free_ports

from conftest import answers, gone, running_cluster, wait_for


def http_group(c, name, port, witness):
    c.Group.create(name)
    c.Resource.create(name, f"{name}-http", "process", {
        "args": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        "check_tcp": f"127.0.0.1:{port}", "witness": witness, "stop_timeout": 3})
    op = c.Operation.wait(c.Group.online(name)["handle"], 60)
    assert op["status"] == "succeeded", op
    return c.Group.get_record(name)


def survivor(cluster, dead):
    return next(n for n in cluster.names() if n not in dead)


def moved(cluster, group, old_owner, old_pid, via):
    with cluster.client(via) as c:
        g = c.Group.get_record(group)
    r = g["resources"][0]
    return g["owner"] != old_owner and g["state"] == "Online" and r["pid"] not in (None, old_pid) and g


@pytest.mark.parametrize("victim", ["owner", "leader-and-owner"])
def test_kill_9_of_the_owner_moves_the_group_and_fences_the_old_process(make_cluster, tmp_path, victim):
    cluster = make_cluster(3)
    witness = str(tmp_path / "witness.jsonl")
    (port,) = free_ports(1, 0)
    leader = cluster.status()["cluster"]["leader"]
    with cluster.client("node1") as c:
        c.Group.create("web")
        if victim == "leader-and-owner":
            c.Group.set_preferred_owners("web", [leader])
        c.Resource.create("web", "web-http", "process", {
            "args": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            "check_tcp": f"127.0.0.1:{port}", "witness": witness, "stop_timeout": 3})
        assert c.Operation.wait(c.Group.online("web")["handle"], 60)["status"] == "succeeded"
        g = c.Group.get_record("web")
    owner, pid = g["owner"], g["resources"][0]["pid"]
    if victim == "leader-and-owner":
        assert owner == leader
    assert answers(port)
    cluster.kill(owner)
    via = survivor(cluster, [owner])
    g = wait_for(lambda: moved(cluster, "web", owner, pid, via), timeout=60, what="the group restarted elsewhere")
    assert g["last_failover"]["from"] == owner and g["last_failover"]["reason"] == "node down"
    assert gone(pid)  # fenced: the old node's resource process was killed before the restart
    wait_for(lambda: answers(port), what="the port answers from the new owner")
    assert double_online(read_witness(witness)) == []


def test_sigstop_of_the_owner_longer_than_the_token_then_sigcont(make_cluster, tmp_path):
    cluster = make_cluster(3)
    witness = str(tmp_path / "witness.jsonl")
    (port,) = free_ports(1, 0)
    with cluster.client("node1") as c:
        g = http_group(c, "web", port, witness)
    owner, pid = g["owner"], g["resources"][0]["pid"]
    cluster.kill(owner, signal.SIGSTOP)
    via = survivor(cluster, [owner])
    wait_for(lambda: moved(cluster, "web", owner, pid, via), timeout=60, what="the group restarted elsewhere")
    if cluster.pid(owner):
        cluster.kill(owner, signal.SIGCONT)
    assert gone(pid)
    wait_for(lambda: answers(port), what="the port answers from the new owner")
    assert double_online(read_witness(witness)) == []


CAPS = netns.capabilities()


CUTS = {  # how the owner (node index 2, or the leader) is cut off from the other two
    "two-way": lambda bed, o, rest: netns.partition(bed, rest, [o]),
    "one-way-in": lambda bed, o, rest: [netns.drop(bed, r, o) for r in rest],  # it sends, hears nobody
    "one-way-out": lambda bed, o, rest: [netns.drop(bed, o, r) for r in rest],  # it hears all, is not heard
}


@pytest.mark.skipif(not (CAPS["root"] and CAPS["netns"] and CAPS["nft"]),
                    reason=f"partitions need root, `ip netns` and nftables; this machine has {CAPS}")
@pytest.mark.parametrize("cut, fence, isolate", [
    ("two-way", "process", "owner"), ("two-way", "watchdog", "owner"), ("one-way-in", "watchdog", "owner"),
    ("one-way-out", "watchdog", "owner"), ("two-way", "watchdog", "leader"),
])
def test_an_isolated_owner_never_runs_the_group_beside_its_successor(tmp_path_factory, xprocess, tmp_path,
                                                                      cut, fence, isolate):
    """The owner (or the Raft leader, made the owner) loses contact: it stops the group itself
    (no quorum, no lease); the majority restarts it only after fencing: by killing it (process)
    or after the fence delay (watchdog). Contact counts only both ways, so a one-way cut in
    either direction is handled like a two-way one. The witness shows no overlap."""
    witness = str(tmp_path / "witness.jsonl")
    with running_cluster(tmp_path_factory, xprocess, "partition", use_netns=True,
                         settings={"fence_agent": fence}) as cluster:
        names = cluster.names()
        owner = cluster.status()["cluster"]["leader"] if isolate == "leader" else "node3"
        with cluster.client("node1") as c:
            c.Group.create("db")
            c.Group.set_preferred_owners("db", [owner])
            c.Resource.create("db", "db-sleeper", "process", {
                "args": [sys.executable, "-c", "import time; time.sleep(600)"], "witness": witness, "stop_timeout": 3})
            assert c.Operation.wait(c.Group.online("db")["handle"], 60)["status"] == "succeeded"
            g = c.Group.get_record("db")
        assert g["owner"] == owner
        pid = g["resources"][0]["pid"]
        bed = cluster.testbed()
        o = names.index(owner)
        CUTS[cut](bed, o, [i for i in range(len(names)) if i != o])
        via = next(n for n in names if n != owner)
        wait_for(lambda: moved(cluster, "db", owner, pid, via), timeout=60, what="restarted on the majority")
        assert gone(pid)
        netns.heal(bed)
        assert double_online(read_witness(witness)) == []


def test_failback_to_the_preferred_owner_when_it_comes_back(make_cluster, tmp_path):
    """Failback "immediate": the group fails over when its preferred owner dies, and moves back
    (the source stops before the destination starts) once that node is running again."""
    cluster = make_cluster(3)
    witness = str(tmp_path / "witness.jsonl")
    (port,) = free_ports(1, 0)
    with cluster.client("node1") as c:
        c.Group.create("web")
        c.Group.set_preferred_owners("web", ["node3"])
        c.Group.set_failover_policy("web", {"failback": "immediate"})
        c.Resource.create("web", "web-http", "process", {
            "args": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            "check_tcp": f"127.0.0.1:{port}", "witness": witness, "stop_timeout": 3})
        assert c.Operation.wait(c.Group.online("web")["handle"], 60)["status"] == "succeeded"
        g = c.Group.get_record("web")
    assert g["owner"] == "node3"
    cluster.kill("node3")
    g = wait_for(lambda: moved(cluster, "web", "node3", g["resources"][0]["pid"], "node1"), timeout=60,
                 what="failed over")
    cluster.start("node3")
    back = wait_for(lambda: moved(cluster, "web", g["owner"], g["resources"][0]["pid"], "node1"), timeout=60,
                    what="failed back")
    assert back["owner"] == "node3"
    wait_for(lambda: answers(port), what="the port answers from node3")
    assert double_online(read_witness(witness)) == []


@pytest.mark.parametrize("fence", ["process", "watchdog"])
def test_removing_an_owner_fences_it_and_its_groups_go_on_elsewhere(tmp_path_factory, xprocess, tmp_path, fence):
    """Node.remove of a live node that owns groups: its online group restarts on a member only
    after the removed node is fenced (its process killed, or its lease run out and the fence
    delay waited), and its offline group comes online on a member, not on the node that is gone."""
    with running_cluster(tmp_path_factory, xprocess, "remove", settings={"fence_agent": fence}) as cluster:
        _remove_an_owner(cluster, str(tmp_path / "witness.jsonl"))


def _remove_an_owner(cluster, witness):
    leader = cluster.status()["cluster"]["leader"]
    owner = next(n for n in cluster.names() if n != leader)
    with cluster.client(leader) as c:
        for name in ("db", "idle"):
            c.Group.create(name)
            c.Group.set_preferred_owners(name, [owner])
            c.Resource.create(name, f"{name}-sleeper", "process", {
                "args": [sys.executable, "-c", "import time; time.sleep(600)"], "witness": witness, "stop_timeout": 3})
            assert c.Operation.wait(c.Group.online(name)["handle"], 60)["status"] == "succeeded"
        assert c.Operation.wait(c.Group.offline("idle")["handle"], 60)["status"] == "succeeded"
        g = c.Group.get_record("db")
        assert g["owner"] == owner == c.Group.get_record("idle")["owner"]
        c.Node.remove(owner)
    pid = g["resources"][0]["pid"]
    g = wait_for(lambda: moved(cluster, "db", owner, pid, leader), timeout=60, what="db restarted on a member")
    assert gone(pid)
    assert g["last_failover"]["from"] == owner and g["last_failover"]["reason"] == "node down"
    with cluster.client(leader) as c:
        assert c.Operation.wait(c.Group.online("idle")["handle"], 60)["status"] == "succeeded"
        idle = c.Group.get_record("idle")
    assert idle["owner"] not in (owner, None) and idle["state"] == "Online"
    assert double_online(read_witness(witness)) == []
