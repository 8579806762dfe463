"""The node as a reconciler, with real daemons and real resource processes.

Losing quorum or the lease preempts whatever is in flight (a start waiting for its health
check, a restart delay, a long monitor, the rest of a group's start) and stops everything; a
failed stop is retried until the resource is proven gone; SIGTERM of the daemon during a start
stops what it started; a restarted daemon alone in a minority does not keep what it adopted.
Bounds are generous (no tight timing): each is far below what the defect it catches takes.
"""
import os
import signal
import sys
import time
import uuid

import psutil
import pytest

from clusterctl.lab.witness import read_witness
from clusterctl.lab.launcher import free_ports
from clusterd import timing

from conftest import gone, running_cluster, wait_for

PY = sys.executable
SLACK = 15.0  # seconds allowed on top of lease + stop bound (a loaded machine); the defects take minutes

OCF_SCRIPT = r'''#!/bin/sh
state="$OCF_RESKEY_state"
case "$1" in
start) touch "$state"; exit 0;;
stop) [ -e "$state.stuck" ] && exit 1; rm -f "$state"; exit 0;;
monitor)
  [ -e "$state" ] || exit 7
  if [ -e "$state.slow" ]; then touch "$state.monitoring"; sleep 600; fi
  [ -e "$state.sick" ] && exit 1
  exit 0;;
meta-data) exit 0;;
*) exit 3;;
esac
'''


def ocf_script(tmp_path):
    path = tmp_path / "flagged.sh"
    path.write_text(OCF_SCRIPT)
    path.chmod(0o755)
    return str(path)


def sleeper(marker, **more):
    return {"args": [PY, "-c", "import time; time.sleep(600)", marker], "stop_timeout": 3, **more}


def copies(marker):
    return [p.pid for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]


def ids(c, group):
    return {r["name"]: r["id"] for r in c.Group.get_record(group)["resources"]}


def starts_of(witness, rid):
    return [line for line in read_witness(witness) if line["event"] == "start" and line["resource"] == rid]


def online(c, group, timeout=60):
    assert c.Operation.wait(c.Group.online(group)["handle"], timeout)["status"] == "succeeded"


def resources_dir(cluster, name):
    return os.path.join(os.path.dirname(cluster.node(name)["config"]), "data", "resources")


def records_of(cluster, name):
    """The resource records in a node's data dir (one exists while its resource may run)."""
    d = resources_dir(cluster, name)
    return sorted(n for n in os.listdir(d) if n.endswith(".json")) if os.path.isdir(d) else []


def alone(cluster, owner="node3"):
    """Kill every other daemon; return the monotonic instant of the cut."""
    cut = time.monotonic()
    for name in cluster.names():
        if name != owner:
            cluster.kill(name)
    return cut


def test_losing_quorum_preempts_everything_in_flight_and_stops_it(tmp_path_factory, xprocess, tmp_path):
    """On node3, at the moment it loses quorum: a start waiting for a health check that never
    passes (start_timeout 300 s), an OCF monitor that hangs (timeout 300 s), a group whose
    first resource is still starting (its second must never start), a restart delay of 8 s.
    All of it must be stopped within lease + stop bound, and nothing may start afterwards."""
    witness = str(tmp_path / "witness.jsonl")
    state = str(tmp_path / "ocf.state")
    marker = f"clusterd-unhealthy-{uuid.uuid4()}"
    (port,) = free_ports(1, 0)  # nothing listens there
    with running_cluster(tmp_path_factory, xprocess, "preempt") as cluster:
        with cluster.client("node1") as c:
            for g in ("starting", "monitoring", "queued", "restarting"):
                c.Group.create(g)
                c.Group.set_preferred_owners(g, ["node3"])
            c.Resource.create("starting", "unhealthy", "process", sleeper(
                marker, check_tcp=f"127.0.0.1:{port}", start_timeout=300, witness=witness))
            c.Resource.create("monitoring", "slow-monitor", "ocf", {
                "script": ocf_script(tmp_path), "params": {"state": state}, "timeout": 300, "stop_timeout": 3,
                "witness": witness})
            c.Resource.set_restart_policy("slow-monitor", {"monitor_interval": 0.2})
            c.Resource.create("queued", "first", "dummy", {"start_delay": 8, "witness": witness})
            c.Resource.create("queued", "second", "dummy", {"witness": witness})
            c.Resource.create("restarting", "dies", "process", sleeper(f"clusterd-dies-{uuid.uuid4()}", witness=witness))
            c.Resource.set_restart_policy("dies", {"monitor_interval": 0.2, "delay": 8.0, "threshold": 5})
            online(c, "monitoring")
            online(c, "restarting")
            rid = {**ids(c, "queued"), **ids(c, "restarting")}
            dies_pid = c.Group.get_record("restarting")["resources"][0]["pid"]
            open(state + ".slow", "w").close()
            c.Group.online("starting")
            c.Group.online("queued")
            wait_for(lambda: os.path.exists(state + ".monitoring"), what="the OCF monitor hangs")
            wait_for(lambda: copies(marker), what="the unhealthy process spawned")
            psutil.Process(dies_pid).kill()
            wait_for(lambda: [x for x in read_witness(witness) if x["event"] == "stop" and x["resource"] == rid["dies"]],
                     what="the dead resource noticed and cleaned up (its restart delay runs)")
        cut = alone(cluster)
        lease = cluster.node_status("node3")["effective_token"]
        bound = lease + timing.REACTION + 3 + timing.KILL_WAIT + SLACK
        wait_for(lambda: not copies(marker), timeout=bound - (time.monotonic() - cut),
                 what="the start waiting for its health check stopped")
        wait_for(lambda: not os.path.exists(state), timeout=bound - (time.monotonic() - cut),
                 what="the resource whose monitor hangs stopped")
        time.sleep(max(0.0, cut + 8 + 5 - time.monotonic()))  # past the restart delay and the first start_delay
        assert starts_of(witness, rid["second"]) == [], "the rest of a group started without quorum"
        assert len(starts_of(witness, rid["dies"])) == 1, "a restart delay ended in a start without quorum"
        assert records_of(cluster, "node3") == [], "a resource record outlived the stop of everything"


def test_a_failed_stop_is_retried_until_the_resource_is_gone(tmp_path_factory, xprocess, tmp_path):
    """A monitor failure, then a stop that fails: the node keeps the resource in its books and
    stops it again until the stop succeeds (the resource does not stay running unmanaged)."""
    state = str(tmp_path / "ocf.state")
    with running_cluster(tmp_path_factory, xprocess, "failedstop") as cluster:
        with cluster.client("node1") as c:
            c.Group.create("g")
            c.Resource.create("g", "stuck", "ocf", {"script": ocf_script(tmp_path), "params": {"state": state},
                                                    "timeout": 5})
            c.Resource.set_restart_policy("stuck", {"monitor_interval": 0.2, "action": "none"})
            online(c, "g")
            assert os.path.exists(state)
            open(state + ".stuck", "w").close()
            open(state + ".sick", "w").close()
            wait_for(lambda: c.Group.get_record("g")["resources"][0]["state"] != "Online", timeout=30,
                     what="the monitor failure noticed")
            log = os.path.join(resources_dir(cluster, c.Group.get_record("g")["owner"]), ids(c, "g")["stuck"] + ".log")
            wait_for(lambda: open(log).read().count(" stop\n") >= 3, timeout=30, what="the stop tried again and again")
            assert os.path.exists(state), "the stop was meant to fail"
            os.unlink(state + ".stuck")
            wait_for(lambda: not os.path.exists(state), timeout=30, what="the failed stop retried")
            wait_for(lambda: c.Group.get_record("g")["resources"][0]["state"] == "Failed", timeout=30,
                     what="then the failure reported (restart action none)")


def test_sigterm_of_the_daemon_during_a_start_stops_what_it_started(tmp_path_factory, xprocess):
    marker = f"clusterd-starting-{uuid.uuid4()}"
    (port,) = free_ports(1, 0)
    with running_cluster(tmp_path_factory, xprocess, "sigterm") as cluster:
        with cluster.client("node1") as c:
            c.Group.create("g")
            c.Group.set_preferred_owners("g", ["node2"])
            c.Resource.create("g", "unhealthy", "process", sleeper(marker, check_tcp=f"127.0.0.1:{port}",
                                                                   start_timeout=300))
            c.Group.online("g")
            wait_for(lambda: copies(marker), what="the process spawned")
        daemon = cluster.pid("node2")
        cluster.kill("node2", signal.SIGTERM)
        wait_for(lambda: gone(daemon), timeout=30, what="the daemon exited")
        assert copies(marker) == [], "the child of an in-flight start outlived the daemon"
        assert records_of(cluster, "node2") == []


@pytest.mark.parametrize("policy", ["stop", "freeze"])
def test_a_restarted_daemon_alone_in_a_minority_stops_what_it_adopted(tmp_path_factory, xprocess, tmp_path, policy):
    """stop: the adopted resource is stopped after the first token. freeze: it is kept, and
    monitored: when it dies, the node notices (its record goes, the witness has its stop)."""
    marker = f"clusterd-adopted-{uuid.uuid4()}"
    witness = str(tmp_path / "witness.jsonl")
    # (the process fence: with the watchdog fence's keeper the resource would not outlive the kill)
    settings = {"no_quorum_policy": policy, "fence_agent": "process"}
    with running_cluster(tmp_path_factory, xprocess, "minority", settings=settings) as cluster:
        with cluster.client("node1") as c:
            c.Group.create("g")
            c.Group.set_preferred_owners("g", ["node3"])
            c.Resource.create("g", "sleeper", "process", sleeper(marker, witness=witness))
            online(c, "g")
        assert len(copies(marker)) == 1
        cluster.kill("node3")
        alone(cluster)
        assert len(copies(marker)) == 1  # it outlives its daemon
        cluster.start("node3")  # alone: never ready, never quorate
        bound = cluster.node_status("node3")["effective_token"] + 3 + timing.KILL_WAIT + SLACK
        if policy == "stop":
            wait_for(lambda: not copies(marker), timeout=bound, what="the adopted resource stopped")
            wait_for(lambda: records_of(cluster, "node3") == [], timeout=SLACK, what="its stop confirmed")
        else:
            time.sleep(bound / 2)
            assert len(copies(marker)) == 1, "freeze stopped what it adopted"
            assert records_of(cluster, "node3") != []
            psutil.Process(copies(marker)[0]).kill()
            wait_for(lambda: records_of(cluster, "node3") == [], timeout=SLACK, what="the adopted resource's death noticed")
        assert [x["event"] for x in read_witness(witness)] == ["start", "stop"]


def test_an_agent_that_raises_is_a_failure_and_is_not_forgotten(tmp_path_factory, xprocess, tmp_path):
    """An agent bug (every call raises, the dummy's crash_file) while the resource runs: the
    monitor that raised is a failure, the stop that raised keeps the resource in the books and is
    retried, and once the agent works again the resource is stopped and restarted."""
    witness = str(tmp_path / "witness.jsonl")
    crash = tmp_path / "crash"
    with running_cluster(tmp_path_factory, xprocess, "raises") as cluster:
        with cluster.client("node1") as c:
            c.Group.create("g")
            c.Resource.create("g", "buggy", "dummy", {"crash_file": str(crash), "witness": witness})
            c.Resource.set_restart_policy("buggy", {"monitor_interval": 0.2, "delay": 0.0, "threshold": 5})
            online(c, "g")
            owner = c.Group.get_record("g")["owner"]
            crash.write_text("")
            time.sleep(3)  # monitors raise, then the stop and its retries as kills
            assert [x["event"] for x in read_witness(witness)] == ["start"]
            assert records_of(cluster, owner) != [], "the resource was forgotten while its stop raised"
            crash.unlink()
            wait_for(lambda: [x["event"] for x in read_witness(witness)] == ["start", "stop", "start"], timeout=30,
                     what="the resource stopped and restarted once its agent works")
            wait_for(lambda: c.Group.get_record("g")["resources"][0]["state"] == "Online", timeout=30,
                     what="and reported Online")
