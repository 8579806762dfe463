"""The keeper (clusterd/keeper.py): with the watchdog fence, a node's resources do not outlive
its lease when its daemon is killed or paused; a restarted daemon re-attaches to its keeper.
Real daemons, real resource processes; the bounds are generous (see SLACK)."""
import os
import signal
import sys
import time
import uuid

import psutil

from clusterd import keeper, timing

from conftest import gone, running_cluster, wait_for
from test_node_reconciler import SLACK, copies, online

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
STOP_TIMEOUT = 2.0


def data_dir(cluster, name):
    return os.path.join(os.path.dirname(cluster.node(name)["config"]), "data")


def keepers(cluster, name):
    d = data_dir(cluster, name)
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "clusterd.keeper" in (p.info["cmdline"] or []) and d in (p.info["cmdline"] or []) and not gone(p.pid)]


def stubborn_on_node3(cluster, stop_timeout=STOP_TIMEOUT):
    """A group on node3 whose process ignores SIGTERM; returns (its marker, its pid)."""
    marker = f"clusterd-kept-{uuid.uuid4()}"
    with cluster.client("node1") as c:
        c.Group.create("g")
        c.Group.set_preferred_owners("g", ["node3"])
        c.Resource.create("g", "stubborn", "process", {"args": [sys.executable, "-c", STUBBORN, marker],
                                                       "stop_timeout": stop_timeout})
        online(c, "g")
    (pid,) = copies(marker)
    return marker, pid


def bound(cluster, stop_timeout=STOP_TIMEOUT):
    lease = cluster.node_status("node1")["effective_token"]
    return lease + timing.REACTION + stop_timeout + timing.KILL_WAIT + SLACK


def test_fire_at_is_the_deadline_or_a_reaction_after_the_last_renewal():
    assert keeper.fire_at(None) == float("-inf")  # never renewed: at once
    assert keeper.fire_at({"deadline": 10.0, "written": 9.0}) == 10.0  # renewing until just before it
    assert keeper.fire_at({"deadline": 10.0, "written": 9.9}) == 9.9 + keeper.STALE  # a daemon still writing
    assert keeper.fire_at({"deadline": 0.0, "written": 5.0}) == 5.0 + keeper.STALE  # no lease at all


def test_a_killed_daemon_leaves_nothing_running_past_its_lease(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "keeper-kill", settings={"fence_agent": "watchdog"}) as cluster:
        assert len(keepers(cluster, "node3")) == 1
        marker, pid = stubborn_on_node3(cluster)
        limit = bound(cluster)
        cluster.kill("node3")
        t0 = time.monotonic()
        wait_for(lambda: gone(pid), timeout=limit, what="the keeper stopped the resource of a killed daemon")
        print(f"resource of a SIGKILLed daemon gone after {time.monotonic() - t0:.2f} s "
              f"(it ignores SIGTERM: stop_timeout {STOP_TIMEOUT:g} s, then SIGKILL)")
        wait_for(lambda: keepers(cluster, "node3") == [], what="the keeper exits: nothing left, no daemon")


def test_a_paused_daemon_leaves_nothing_running_past_its_lease(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "keeper-stop", settings={"fence_agent": "watchdog"}) as cluster:
        marker, pid = stubborn_on_node3(cluster)
        limit = bound(cluster)
        daemon = psutil.Process(cluster.pid("node3"))
        daemon.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            wait_for(lambda: gone(pid), timeout=limit, what="the keeper stopped the resource of a paused daemon")
            print(f"resource of a SIGSTOPped daemon gone after {time.monotonic() - t0:.2f} s")
        finally:
            daemon.send_signal(signal.SIGCONT)
        wait_for(lambda: cluster.node_status("node3")["is_quorate"], timeout=60, what="node3 back")
        assert len(keepers(cluster, "node3")) == 1


def test_a_restarted_daemon_re_attaches_to_its_keeper(tmp_path_factory, xprocess):
    """The keeper outlives the daemon while anything is recorded (here a resource that ignores
    SIGTERM for 30 s): the restarted daemon finds it and starts no second one; the keeper then
    watches the new daemon (which adopted the resource or starts it again: one copy)."""
    with running_cluster(tmp_path_factory, xprocess, "keeper-again", settings={"fence_agent": "watchdog"}) as cluster:
        (before,) = keepers(cluster, "node3")
        marker, _ = stubborn_on_node3(cluster, stop_timeout=30)
        cluster.kill("node3")
        assert keepers(cluster, "node3") == [before]
        cluster.start("node3")
        wait_for(lambda: cluster.node_status("node3")["ready"], timeout=60, what="node3 ready again")
        assert keepers(cluster, "node3") == [before]
        with cluster.client("node1") as c:
            wait_for(lambda: c.Group.get_record("g")["state"] == "Online" and len(copies(marker)) == 1,
                     timeout=bound(cluster, 30), what="the group online again, once")
        assert keepers(cluster, "node3") == [before]
        cluster.kill("node2", signal.SIGTERM)  # a clean exit: the daemon's keeper exits too
        wait_for(lambda: keepers(cluster, "node2") == [], timeout=30, what="node2's keeper exited with it")


def test_a_stop_that_raises_does_not_end_the_keeper(tmp_path_factory, xprocess, tmp_path):
    """The daemon is killed while its resource's agent is broken (every call raises: the dummy's
    crash_file): the keeper keeps trying, and stops the resource once its agent works again."""
    crash = tmp_path / "crash"
    with running_cluster(tmp_path_factory, xprocess, "keeper-raise", settings={"fence_agent": "watchdog"}) as cluster:
        with cluster.client("node1") as c:
            c.Group.create("g")
            c.Group.set_preferred_owners("g", ["node3"])
            c.Resource.create("g", "buggy", "dummy", {"crash_file": str(crash)})
            online(c, "g")
            rid = c.Group.get_record("g")["resources"][0]["id"]
        record = os.path.join(data_dir(cluster, "node3"), "resources", rid + ".json")
        assert os.path.exists(record)
        crash.write_text("")
        cluster.kill("node3")
        time.sleep(bound(cluster, 0) - SLACK + 2)  # past the lease: the keeper has tried to stop it
        assert os.path.exists(record) and len(keepers(cluster, "node3")) == 1, "the keeper ended"
        crash.unlink()
        wait_for(lambda: not os.path.exists(record), timeout=SLACK, what="the keeper stopped it")
