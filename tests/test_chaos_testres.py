"""The self-witnessing test resource (tools/clusterctl/lab/chaos/testres.py), run as a real process:
its witness lines, and each fault the control file can give it."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from clusterctl.lab.chaos import checkers
from clusterctl.lab.chaos.testcluster import TESTRES
from clusterctl.lab.witness import read_witness
from clusterctl.lab.launcher import free_ports

DEADLINE = 20.0  # generous: the machine is shared


@pytest.fixture
def res(tmp_path):
    procs = []

    def start(faults=None, node="node1", name="g0-a", port=None):
        """A testres process; faults (when given) replace the shared control file's."""
        control = tmp_path / "g0.json"
        if faults is not None:
            control.write_text(json.dumps(list(faults)))
        env = dict(os.environ, CLUSTERD_NODE=node, CLUSTERD_RESOURCE=name)
        args = [sys.executable, TESTRES, "--witness", str(tmp_path / "w.jsonl"), "--group", "g0",
                "--control", str(control)] + (["--port", str(port)] if port else [])
        p = subprocess.Popen(args, env=env, start_new_session=True)
        procs.append(p)
        return p
    start.witness = tmp_path / "w.jsonl"
    start.control = tmp_path / "g0.json"
    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def until(cond, what):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {DEADLINE} s")


def events(res, pid):
    return [r["event"] for r in read_witness(res.witness) if r["pid"] == pid]


def answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_it_writes_a_start_line_then_alive_lines_and_an_exit_line_on_sigterm(res):
    p = res()
    until(lambda: events(res, p.pid).count("alive") >= 5, "five alive lines")
    p.send_signal(signal.SIGTERM)
    assert p.wait(DEADLINE) == 0
    lines = [r for r in read_witness(res.witness) if r["pid"] == p.pid]
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "exit"
    assert {(r["group"], r["resource"], r["node"]) for r in lines} == {("g0", "g0-a", "node1")}
    ts = [r["t"] for r in lines]
    assert ts == sorted(ts) and abs(ts[0] - time.monotonic()) < 120  # the system-wide monotonic clock
    life, = checkers.lifetimes(lines)
    assert life["ended"] and life["start"] == ts[0] and life["last"] == ts[-1]


def test_an_exit_fault_ends_it_with_that_code_and_only_on_its_node(res):
    mine = res([{"fault": "exit", "code": 7, "node": "node1", "resource": "g0-a"}])
    other = res(node="node2")  # the control file is shared; the fault names node1
    assert mine.wait(DEADLINE) == 7
    assert events(res, mine.pid)[-1] == "exit"
    until(lambda: events(res, other.pid).count("alive") >= 3, "the other node's process living on")
    assert other.poll() is None


def test_a_kill_fault_dies_without_an_exit_line(res):
    p = res([{"fault": "kill"}])
    assert p.wait(DEADLINE) == -signal.SIGKILL
    assert "exit" not in events(res, p.pid) and events(res, p.pid)[0] == "start"


def test_a_fault_window_spares_processes_started_after_it(res):
    p = res([{"fault": "exit", "code": 3, "before": time.monotonic() - 60}])
    until(lambda: events(res, p.pid).count("alive") >= 3, "alive lines")
    assert p.poll() is None


def test_slow_start_listens_late_and_close_port_stops_answering_while_it_lives(res):
    port, = free_ports(1, 0)
    p = res([{"fault": "slow_start", "seconds": 1.5}], port=port)
    until(lambda: events(res, p.pid).count("alive") >= 3, "alive lines")
    started = next(r["t"] for r in read_witness(res.witness) if r["pid"] == p.pid)
    assert not answers(port) or time.monotonic() - started >= 1.5
    until(lambda: answers(port), "the port answering")
    listening = next(r for r in read_witness(res.witness) if r["event"] == "listening")
    assert listening["t"] - started >= 1.5
    res.control.write_text(json.dumps([{"fault": "close_port"}]))
    until(lambda: "closed_port" in events(res, p.pid), "the closed_port line")
    assert not answers(port) and p.poll() is None


def test_ignore_term_lives_on_after_sigterm_for_its_seconds(res):
    p = res([{"fault": "ignore_term", "seconds": 1.0}])
    until(lambda: "alive" in events(res, p.pid), "an alive line")
    res.control.write_text("[]")  # the fault was latched: clearing it changes nothing now
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    assert p.wait(DEADLINE) == 0
    lines = [r for r in read_witness(res.witness) if r["pid"] == p.pid]
    term = next(r["t"] for r in lines if r["event"] == "term")
    assert lines[-1]["event"] == "exit" and lines[-1]["t"] - term >= 1.0
    assert any(r["event"] == "alive" and r["t"] > term + 0.5 for r in lines)


def test_hang_term_lives_until_sigkill(res):
    p = res([{"fault": "hang_term"}])
    until(lambda: "alive" in events(res, p.pid), "an alive line")
    p.send_signal(signal.SIGTERM)
    until(lambda: "term" in events(res, p.pid), "the term line")
    n = events(res, p.pid).count("alive")
    until(lambda: events(res, p.pid).count("alive") >= n + 10, "alive lines after SIGTERM")
    assert p.poll() is None
    p.kill()
    assert p.wait(DEADLINE) == -signal.SIGKILL and "exit" not in events(res, p.pid)
