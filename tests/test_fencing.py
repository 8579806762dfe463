"""Fence agents: the script agent's convention, its configuration, and a failed fence that
blocks a failover until a retry succeeds (real daemons, a real fence script)."""
import asyncio
import os
import stat
import subprocess
import sys
import textwrap
import types

import psutil
import pytest

from clusterd import config, fencing

from conftest import running_cluster, wait_for


def script(path, body):
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def fencer(fence_script, timeout=5.0, options=None):
    cfg = types.SimpleNamespace(fence_agent="script", fence_script=fence_script, fence_timeout=timeout,
                                fence_options=options or {})
    return fencing.Fencer(types.SimpleNamespace(cfg=cfg), started=0.0)


def test_script_input_is_name_value_lines_with_ours_first():
    assert fencing.script_input("node2", {"ip": "192.0.2.1", "port": 623}) == \
        b"action=off\nplug=node2\nnodename=node2\nip=192.0.2.1\nport=623\n"


def test_script_agent_reads_stdin_and_exit_0_means_fenced(tmp_path):
    seen = tmp_path / "stdin"
    path = script(tmp_path / "fence", f"cat > {seen}\necho powered off\nexit 0\n")
    ok, detail = asyncio.run(fencer(path, options={"ip": "192.0.2.1"}).fence("node3"))
    assert ok and "powered off" in detail
    assert seen.read_text().splitlines() == ["action=off", "plug=node3", "nodename=node3", "ip=192.0.2.1"]


def test_script_agent_nonzero_exit_is_a_failed_fence_with_its_output(tmp_path):
    path = script(tmp_path / "fence", "cat >/dev/null\necho 'no route to the PDU' >&2\nexit 1\n")
    ok, detail = asyncio.run(fencer(path).fence("node3"))
    assert not ok and "exited 1" in detail and "no route to the PDU" in detail


def test_script_agent_that_hangs_is_killed_and_failed(tmp_path):
    pidfile = tmp_path / "pid"
    path = script(tmp_path / "fence", f"echo $$ > {pidfile}\nexec sleep 60\n")
    ok, detail = asyncio.run(fencer(path, timeout=0.5).fence("node3"))
    assert not ok and "no answer within 0.5 s" in detail
    assert not os.path.exists(f"/proc/{pidfile.read_text().strip()}")


def test_script_agent_that_cannot_run_is_a_failed_fence(tmp_path):
    ok, detail = asyncio.run(fencer(str(tmp_path / "missing")).fence("node3"))
    assert not ok and "could not run" in detail


@pytest.mark.parametrize("fence, problem", [
    ({"fence_agent": "stonith"}, "fence_agent must be"),
    ({"fence_agent": "script"}, "not an executable file"),
    ({"fence_agent": "script", "fence_script": "relative/fence"}, "not an executable file"),
    ({"fence_agent": "script", "fence_script": "NOT-EXECUTABLE"}, "not an executable file"),
    ({"fence_options": {"plug": "x"}}, "set by clusterd"),
    ({"fence_options": {"ip": "a\nb"}}, "one-line"),
    ({"fence_options": {"bad key": "x"}}, "identifiers"),
    ({"fence_timeout": 0}, "fence_timeout"),
    ({"no_quorum_policy": "panic", "fence_agent": "process"}, "no_quorum_policy must be"),
    ({"no_quorum_policy": "freeze"}, "watchdog fence relies on the node stopping"),
    ({"no_quorum_policy": "ignore"}, "watchdog fence relies on the node stopping"),
])
def test_bad_fence_configuration_is_refused(tmp_path, fence, problem):
    values = {"name": "n1", "raft": "127.0.0.1:1", "heartbeat": "127.0.0.1:2", "api": "127.0.0.1:3",
              "data_dir": str(tmp_path), "token_file": "t", "users_file": "u",
              "members": [{"name": "n1", "raft": "127.0.0.1:1", "heartbeat": "127.0.0.1:2", "api": "127.0.0.1:3"}]}
    if fence.get("fence_script") == "NOT-EXECUTABLE":
        (tmp_path / "plain").write_text("#!/bin/sh\n")
        fence = dict(fence, fence_script=str(tmp_path / "plain"))
    with pytest.raises(config.ConfigError, match=problem):
        config.validate({**values, **fence})


def test_a_failed_script_fence_blocks_the_failover_until_a_retry_succeeds(tmp_path_factory, xprocess, tmp_path):
    """The fence script fails until the operator fixes it; meanwhile the group stays where it
    was, the failure is in `clusterctl status`; then a retry fences and the group moves."""
    log, verdict = tmp_path / "fence.log", tmp_path / "verdict"
    verdict.write_text("1")
    path = script(tmp_path / "fence", f"""\
        cat >> {log}
        echo --- >> {log}
        exit $(cat {verdict})
        """)
    fence = {"fence_agent": "script", "fence_script": path, "fence_options": {"site": "lab"}}
    with running_cluster(tmp_path_factory, xprocess, settings=fence) as cluster:
        with cluster.client("node1") as c:
            c.Group.create("g")
            c.Resource.create("g", "g-dummy", "dummy", {})
            assert c.Operation.wait(c.Group.online("g")["handle"], 60)["status"] == "succeeded"
            owner = c.Group.get_record("g")["owner"]
        cluster.kill(owner)
        via = next(n for n in cluster.names() if n != owner)

        def fence_record():
            with cluster.client(via) as c:
                return c.Node.fence_status().get(owner)
        wait_for(lambda: (fence_record() or {}).get("status") == "failed", timeout=30, what="a failed fence")
        with cluster.client(via) as c:
            assert c.Group.get_record("g")["owner"] == owner  # blocked: not moved while unfenced
        clusterctl = os.path.join(os.path.dirname(sys.executable), "clusterctl")
        shown = subprocess.run([clusterctl, "status", "--dir", cluster.dir], capture_output=True, text=True, timeout=60)
        assert f"fence of {owner}: " in shown.stdout and "by script" in shown.stdout, shown.stdout
        verdict.write_text("0")
        wait_for(lambda: fence_record()["status"] == "fenced", timeout=30, what="a retried fence")
        assert fence_record()["attempts"] >= 2

        def moved():
            with cluster.client(via) as c:
                g = c.Group.get_record("g")
            return g["owner"] != owner and g["state"] == "Online"
        wait_for(moved, timeout=30, what="the group online elsewhere")
    first = log.read_text().split("---\n")[0].splitlines()
    assert first == ["action=off", f"plug={owner}", f"nodename={owner}", "site=lab"]


def test_the_process_fence_stops_what_the_lost_nodes_agents_recorded(tmp_path):
    """A resource whose pid never reached the database (started just before its node was cut
    off) is still found: by the record its agent keeps in the node's data dir."""
    from clusterd import agents
    from clusterctl.lab.witness import read_witness
    witness = str(tmp_path / "witness.jsonl")
    resource = {"id": "r1", "name": "sleeper", "type": "process",
                "properties": {"args": [sys.executable, "-c", "import time; time.sleep(600)"], "witness": witness}}
    started = asyncio.run(agents.create(resource, agents.Context(node="node3", data_dir=str(tmp_path))).start())
    assert started.state == "online" and psutil.pid_exists(started.pid)
    assert asyncio.run(fencing._stop_recorded(str(tmp_path), "node3")) == []
    assert not psutil.pid_exists(started.pid) or psutil.Process(started.pid).status() == psutil.STATUS_ZOMBIE
    assert [r["event"] for r in read_witness(witness)] == ["start", "stop"]
    assert agents.leftovers(str(tmp_path)) == []


def test_the_process_fence_stops_an_ocf_record_with_its_stop_action(tmp_path):
    """An OCF resource is stopped by its script's stop action, which needs its time: the fence
    gives it the resource's real stop timeout (0 s made every such fence fail)."""
    from clusterd import agents
    state = tmp_path / "state"
    ra = script(tmp_path / "ra", """\
        case "$1" in
          start) touch "$OCF_RESKEY_state"; exit 0;;
          stop) sleep 0.2; rm -f "$OCF_RESKEY_state"; exit 0;;
          monitor) [ -e "$OCF_RESKEY_state" ] && exit 0; exit 7;;
          *) exit 3;;
        esac
        """)
    resource = {"id": "r2", "name": "svc", "type": "ocf", "properties": {"script": ra, "params": {"state": str(state)}}}
    started = asyncio.run(agents.create(resource, agents.Context(node="node3", data_dir=str(tmp_path))).start())
    assert started.state == "online" and state.exists()
    assert asyncio.run(fencing._stop_recorded(str(tmp_path), "node3")) == []
    assert not state.exists() and agents.leftovers(str(tmp_path)) == []
