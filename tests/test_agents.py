"""Resource agents with real processes and scripts, no cluster: clusterd/agents/.

Every process a test starts is started through an agent and also registered with the
`started` fixture, which kills (by pid, identity-checked) whatever is still alive at teardown.
All sockets are on 127.0.0.1; every wait is a poll with a deadline.
"""
import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
import uuid

import psutil
import pytest
import uvloop

from clusterd import agents, timing
from clusterd.agents import Context, DummyAgent, OcfAgent, ProcessAgent, ocf, process

PY = sys.executable
SLEEPER = [PY, "-c", "import time; time.sleep(60)"]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- helpers ----------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.getsockname() != s.getpeername()  # not TCP's connection of a socket to itself
    except OSError:
        return False


def running(pid, ticks=None):
    """pid is a live process (not a zombie), and the same one if ticks is given."""
    st = process.proc_stat(pid)
    return st is not None and process.lives(pid, st) and (ticks is None or st.start_ticks == ticks)


def reaped(pid, ticks):
    """Our process pid is gone from the process table entirely: no zombie left."""
    st = process.proc_stat(pid)
    return st is None or st.start_ticks != ticks


async def until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.02)


def log_text(ctx, rid):
    try:
        with open(os.path.join(ctx.resources_dir, f"{rid}.log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def record(ctx, rid):
    path = os.path.join(ctx.resources_dir, f"{rid}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def witness_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def resource(rid, rtype, **properties):
    return {"id": rid, "name": f"{rid}-name", "type": rtype, "properties": properties}


def write_script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def ctx(tmp_path):
    return Context(node="n1", data_dir=str(tmp_path / "data"), witness=str(tmp_path / "witness.jsonl"))


def alive(p):
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE  # is_running checks pid + create time
    except psutil.Error:
        return False


@pytest.fixture
def started():
    """Register pids a test started (through an agent). At teardown, any of them still running
    is killed by pid, and the test fails: the agents must have left nothing running."""
    procs = []

    def register(*pids):
        for pid in pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass  # already gone

    yield register
    left = [p for p in procs if alive(p)]
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + 5
    while any(alive(p) for p in left) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"left running: {[p.pid for p in left]}"


# -- the registry and validate() --------------------------------------------------------------
def test_registry():
    assert agents.get("process") is ProcessAgent
    assert agents.get("ocf") is OcfAgent
    assert agents.get("dummy") is DummyAgent
    with pytest.raises(KeyError):
        agents.get("lsb")
    assert "unknown resource type" in agents.validate("lsb", {})[0]
    assert agents.validate("dummy", {}) == []
    assert isinstance(agents.create(resource("r", "dummy"), Context("n1", "/nonexistent")), DummyAgent)
    with pytest.raises(ValueError):
        ProcessAgent({"id": "../x", "type": "process", "properties": {}}, Context("n1", "/nonexistent"))


@pytest.mark.parametrize("rtype, properties, problem", [
    ("process", {}, "args is required"),
    ("process", {"args": []}, "args must be a non-empty list"),
    ("process", {"args": "python3 -m http.server"}, "args must be a non-empty list"),
    ("process", {"args": ["x", 1]}, "args must be a non-empty list"),
    ("process", {"args": ["x"], "check_tcp": "10.0.0.1:80"}, "loopback"),
    ("process", {"args": ["x"], "check_tcp": "0.0.0.0:80"}, "loopback"),
    ("process", {"args": ["x"], "check_tcp": "localhost:80"}, "loopback"),
    ("process", {"args": ["x"], "check_tcp": "127.0.0.1"}, "HOST:PORT"),
    ("process", {"args": ["x"], "check_tcp": "127.0.0.1:70000"}, "HOST:PORT"),
    ("process", {"args": ["x"], "check_http": "http://192.168.1.10:8080/"}, "loopback"),
    ("process", {"args": ["x"], "check_http": "http://example.com/health"}, "loopback"),
    ("process", {"args": ["x"], "check_http": "https://127.0.0.1:8443/"}, "http://"),
    ("process", {"args": ["x"], "stop_timeout": -1}, "stop_timeout"),
    ("process", {"args": ["x"], "stop_timeout": True}, "stop_timeout"),
    ("process", {"args": ["x"], "env": {"A-B": "1"}}, "not a valid name"),
    ("process", {"args": ["x"], "env": {"A": 1}}, "string to a string"),
    ("process", {"args": ["x"], "stop_timout": 3}, "unknown property 'stop_timout'"),
    ("process", ["args"], "properties must be a map"),
    ("ocf", {}, "script is required"),
    ("ocf", {"script": "agents/dummy"}, "absolute path"),
    ("ocf", {"script": "/x", "params": {"a b": "c"}}, "not a valid name"),
    ("ocf", {"script": "/x", "timeout": 0}, "timeout"),
    ("dummy", {"fail_start": "yes"}, "fail_start must be true, false or a list"),
    ("dummy", {"start_delay": -1}, "start_delay"),
    ("dummy", {"witness": "relative.jsonl"}, "absolute path"),
])
def test_validate_rejects(rtype, properties, problem):
    problems = agents.validate(rtype, properties)
    assert any(problem in p for p in problems), problems


def test_validate_accepts():
    assert agents.validate("process", {
        "args": ["x"], "cwd": "/tmp", "env": {"A": "b"}, "stop_timeout": 2.5, "start_timeout": 3,
        "check_tcp": "127.0.0.1:80", "check_http": "http://127.0.0.1:8080/health?x=1",
        "witness": "/tmp/w.jsonl"}) == []
    assert agents.validate("process", {"args": ["x"], "check_tcp": "[::1]:80"}) == []
    assert agents.validate("ocf", {"script": "/x", "params": {"ip": "10.0.0.1"}, "timeout": 5,
                                   "stop_timeout": 9}) == []
    assert agents.validate("dummy", {"fail_start": ["n2"], "fail_file": "/tmp/f", "locked": True,
                                     "not_now_file": "/tmp/n", "start_delay": 0.5}) == []


def test_invalid_properties_fail_fatally_without_running_anything(ctx):
    a = ProcessAgent(resource("bad", "process", args=["x"], check_tcp="192.0.2.1:80"), ctx)
    r = asyncio.run(a.start())
    assert (r.state, r.severity) == ("failed", "fatal")
    assert "loopback" in r.detail
    assert record(ctx, "bad") is None


@pytest.mark.parametrize("rtype, properties", [
    ("process", {"args": SLEEPER}), ("ocf", {"script": "/bin/true"}), ("dummy", {}),
])
def test_an_unusable_data_dir_is_a_hard_failure_and_runs_nothing(tmp_path, rtype, properties):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data dir should be")
    ctx = Context(node="n1", data_dir=str(blocker), witness=str(tmp_path / "witness.jsonl"))
    r = asyncio.run(agents.create(resource("r", rtype, **properties), ctx).start())
    assert (r.state, r.severity) == ("failed", "hard"), r
    assert "cannot" in r.detail
    assert witness_lines(ctx.witness) == []  # nothing ran


# -- process ----------------------------------------------------------------------------------
def test_process_http_server_lifecycle(ctx, tmp_path, started):
    port = free_port()
    a = ProcessAgent(resource("web", "process", args=[PY, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              cwd=str(tmp_path), check_http=f"http://127.0.0.1:{port}/"), ctx)

    async def body():
        r = await a.start()
        assert r.state == "online", r
        started(r.pid)
        rec = record(ctx, "web")
        assert rec["pid"] == r.pid and rec["create_time"] == psutil.Process(r.pid).create_time()
        assert os.getsid(r.pid) == r.pid  # its own session, so its own process group

        m = await a.monitor()
        assert (m.state, m.pid) == ("online", r.pid)
        with NO_PROXY.open(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            assert resp.status == 200
        assert await a.start() == m  # a second start reports the running one: no duplicate

        s = await a.stop(timeout=5)
        assert (s.state, s.detail) == ("offline", "stopped by SIGTERM")
        assert not accepts(port)
        assert reaped(r.pid, rec["start_ticks"])  # gone, and no zombie left
        assert record(ctx, "web") is None
        assert (await a.monitor()).state == "offline"
        assert "GET / HTTP" in log_text(ctx, "web")  # the child's output went to its log
        return r.pid

    pid = asyncio.run(body())
    lines = witness_lines(ctx.witness)
    assert [(w["event"], w["resource"], w["node"], w["pid"]) for w in lines] == [
        ("start", "web", "n1", pid), ("stop", "web", "n1", pid)]
    assert lines[0]["t"] < lines[1]["t"]


def test_process_ignoring_sigterm_is_sigkilled_with_its_group(ctx, started):
    code = ("import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print('ready', child.pid, flush=True)\n"
            "time.sleep(60)\n")
    a = ProcessAgent(resource("stubborn", "process", args=[PY, "-c", code], stop_timeout=0.5), ctx)

    async def body():
        r = await a.start()
        assert r.state == "online", r
        started(r.pid)
        line = await until(lambda: [x for x in log_text(ctx, "stubborn").splitlines() if x.startswith("ready")],
                           what="child ready")
        grandchild = int(line[0].split()[1])
        started(grandchild)
        assert running(grandchild)
        popen = a.popen
        t0 = time.monotonic()
        s = await a.stop()  # the property's stop_timeout: 0.5 s
        elapsed = time.monotonic() - t0
        assert s.state == "offline" and "SIGKILL after 0.5 s" in s.detail, s
        assert 0.5 <= elapsed < 5
        assert not running(r.pid) and not running(grandchild)
        assert popen.returncode == -signal.SIGKILL
        assert record(ctx, "stubborn") is None

    asyncio.run(body())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_process_dying_child_is_reaped_and_monitor_fails(ctx, started, loop):
    a = ProcessAgent(resource("dies", "process", args=SLEEPER), ctx)

    async def body():
        r = await a.start()
        assert r.state == "online", r
        started(r.pid)
        ticks = record(ctx, "dies")["start_ticks"]
        os.kill(r.pid, signal.SIGKILL)
        # reaped by the agent's pidfd watcher on the event loop, with no agent call: no zombie
        await until(lambda: reaped(r.pid, ticks), timeout=5, what="child reaped")
        m = await a.monitor()
        assert (m.state, m.severity, m.pid) == ("failed", "soft", r.pid)
        assert "killed by signal 9" in m.detail
        s = await a.stop()
        assert s.state == "offline" and record(ctx, "dies") is None
        return r.pid

    pid = (asyncio.run if loop == "asyncio" else uvloop.run)(body())
    assert [(w["event"], w["pid"]) for w in witness_lines(ctx.witness)] == [("start", pid), ("stop", pid)]


def test_process_start_waits_for_health_and_cleans_up_when_it_never_comes(ctx, tmp_path, started):
    port = free_port()
    a = ProcessAgent(resource("sick", "process", args=[PY, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              cwd=str(tmp_path), check_http=f"http://127.0.0.1:{port}/missing", start_timeout=1), ctx)

    async def body():
        r = await a.start()
        started(r.pid)
        assert (r.state, r.severity) == ("failed", "soft"), r
        assert "HTTP 404" in r.detail
        assert not running(r.pid) and not accepts(port)
        assert record(ctx, "sick") is None
        return r.pid

    pid = asyncio.run(body())
    assert [w["event"] for w in witness_lines(ctx.witness) if w["pid"] == pid] == ["start", "stop"]


@pytest.mark.parametrize("properties, named", [
    ({"args": ["/nonexistent/bin/daemon"]}, "/nonexistent/bin/daemon"),
    ({"args": SLEEPER, "cwd": "/nonexistent/dir"}, "/nonexistent/dir"),
])
def test_process_that_cannot_start_is_a_hard_failure(ctx, properties, named):
    a = ProcessAgent(resource("nope", "process", **properties), ctx)
    r = asyncio.run(a.start())
    assert (r.state, r.severity) == ("failed", "hard") and "cannot start" in r.detail
    assert named in r.detail
    assert record(ctx, "nope") is None
    assert witness_lines(ctx.witness) == []


def test_process_adopt_after_restart_finds_the_same_process(ctx, started):
    port = free_port()
    res = resource("kept", "process", args=[PY, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                   check_tcp=f"127.0.0.1:{port}")

    async def body():
        first = ProcessAgent(res, ctx)
        r = await first.start()
        assert r.state == "online", r
        started(r.pid)
        before = record(ctx, "kept")

        # the daemon restarts: a new agent, same data dir
        again = ProcessAgent(res, Context(node="n1", data_dir=ctx.data_dir, witness=ctx.witness))
        adopted = await again.adopt()
        assert (adopted.state, adopted.pid) == ("online", r.pid)
        assert (await again.start()).pid == r.pid  # start after adopt: still the same one
        assert process.launched(before["launch"]) == [r.pid]  # exactly one process carries the launch
        assert record(ctx, "kept") == before  # same pid and create time, record untouched

        s = await again.stop(timeout=5)
        assert s.state == "offline"
        assert not accepts(port)
        await until(lambda: reaped(r.pid, before["start_ticks"]), timeout=5, what="child reaped")
        assert record(ctx, "kept") is None

    asyncio.run(body())
    assert [w["event"] for w in witness_lines(ctx.witness)] == ["start", "stop"]


def test_process_adopt_finds_a_process_whose_record_was_never_completed(ctx, started):
    res = resource("early", "process", args=SLEEPER)
    path = os.path.join(ctx.resources_dir, "early.json")

    async def body():
        first = ProcessAgent(res, ctx)
        r = await first.start()
        started(r.pid)
        full = record(ctx, "early")
        # the daemon died between the spawn and completing the record: only the intent is on disk
        intent = {k: full[k] for k in ("type", "node", "resource", "launch")}
        with open(path, "w") as f:
            json.dump(intent, f)

        again = ProcessAgent(res, Context(node="n1", data_dir=ctx.data_dir))
        adopted = await again.adopt()
        assert (adopted.state, adopted.pid) == ("online", r.pid)  # found by its launch token
        assert record(ctx, "early")["start_ticks"] == full["start_ticks"]  # the record is complete again
        assert (await again.stop(timeout=5)).state == "offline" and not running(r.pid)

        with open(path, "w") as f:  # an intent whose spawn never happened
            json.dump(dict(intent, launch="0" * 32), f)
        assert await ProcessAgent(res, Context(node="n1", data_dir=ctx.data_dir)).adopt() is None
        assert record(ctx, "early") is None

    asyncio.run(body())


def test_process_adopt_drops_a_record_whose_process_is_gone(ctx, started):
    res = resource("gone", "process", args=SLEEPER)

    async def body():
        first = ProcessAgent(res, ctx)
        r = await first.start()
        started(r.pid)
        ticks = record(ctx, "gone")["start_ticks"]
        os.kill(r.pid, signal.SIGKILL)  # it died while "the daemon was down"
        await until(lambda: reaped(r.pid, ticks), timeout=5, what="child reaped")

        again = ProcessAgent(res, Context(node="n1", data_dir=ctx.data_dir, witness=ctx.witness))
        assert await again.adopt() is None
        assert record(ctx, "gone") is None
        assert (await again.monitor()).state == "offline"
        return r.pid

    pid = asyncio.run(body())
    assert [(w["event"], w["pid"]) for w in witness_lines(ctx.witness)] == [("start", pid), ("stop", pid)]


def test_process_adopt_kills_what_is_left_of_a_dead_process_group(ctx, started):
    code = ("import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print('ready', child.pid, flush=True)\n"
            "time.sleep(60)\n")
    res = resource("orphans", "process", args=[PY, "-c", code], stop_timeout=2)

    async def body():
        r = await ProcessAgent(res, ctx).start()
        started(r.pid)
        line = await until(lambda: [x for x in log_text(ctx, "orphans").splitlines() if x.startswith("ready")],
                           what="child ready")
        grandchild = int(line[0].split()[1])
        started(grandchild)
        ticks = record(ctx, "orphans")["start_ticks"]
        os.kill(r.pid, signal.SIGKILL)  # the main process dies; its child stays in the group
        await until(lambda: reaped(r.pid, ticks), timeout=5, what="child reaped")
        assert running(grandchild)

        again = ProcessAgent(res, Context(node="n1", data_dir=ctx.data_dir))
        assert await again.adopt() is None
        assert not running(grandchild)  # never an orphan
        assert record(ctx, "orphans") is None

    asyncio.run(body())


def test_process_adopt_drops_a_record_whose_pid_was_reused(ctx, started):
    res = resource("reused", "process", args=SLEEPER)

    async def body():
        first = ProcessAgent(res, ctx)
        r = await first.start()
        started(r.pid)
        # make the record name another process with the same pid: a different start time
        rec = record(ctx, "reused")
        rec["start_ticks"] += 100
        rec["create_time"] += 1.0
        with open(os.path.join(ctx.resources_dir, "reused.json"), "w") as f:
            json.dump(rec, f)

        again = ProcessAgent(res, Context(node="n1", data_dir=ctx.data_dir))
        assert await again.adopt() is None
        assert record(ctx, "reused") is None
        assert running(r.pid)  # the process behind the reused pid is not ours: untouched

        s = await first.stop(timeout=5)  # the instance that started it still knows it
        assert s.state == "offline" and not running(r.pid)

    asyncio.run(body())


def test_process_environment_carries_the_move_properties(ctx, started, monkeypatch):
    monkeypatch.setenv("CLUSTERD_MOVE_stale", "from the daemon")  # never leaks into a resource
    code = ("import json, os, time\n"
            "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith(('CLUSTERD_', 'MY_'))}),"
            " flush=True)\n"
            "time.sleep(60)\n")
    ctx.move_properties = {"mode": "live", "weight": 3, "odd-key": "x"}
    a = ProcessAgent(resource("envy", "process", args=[PY, "-c", code],
                              env={"MY_VAR": "1", "CLUSTERD_NODE": "spoofed"}), ctx)

    async def body():
        r = await a.start()
        started(r.pid)
        text = await until(lambda: log_text(ctx, "envy").strip(), what="environment printed")
        await a.stop(timeout=5)
        return json.loads(text.splitlines()[0])

    env = asyncio.run(body())
    assert env["CLUSTERD_MOVE_mode"] == "live"
    assert env["CLUSTERD_MOVE_weight"] == "3"
    assert env["CLUSTERD_MOVE_odd_key"] == "x"
    assert env["CLUSTERD_RESOURCE"] == "envy-name"
    assert env["CLUSTERD_RESOURCE_ID"] == "envy"
    assert env["CLUSTERD_NODE"] == "n1"
    assert env["MY_VAR"] == "1"
    assert "CLUSTERD_MOVE_stale" not in env


# -- ocf --------------------------------------------------------------------------------------
@pytest.mark.parametrize("code, state, severity", [
    (0, "online", None), (1, "failed", "soft"), (2, "failed", "hard"), (3, "failed", "hard"),
    (4, "failed", "hard"), (5, "failed", "hard"), (6, "failed", "fatal"), (7, "failed", "soft"),
])
def test_ocf_start_exit_codes(ctx, tmp_path, code, state, severity):
    script = write_script(tmp_path, "ra", f'case "$1" in start) exit {code};; stop) exit 0;; *) exit 3;; esac\n')
    a = OcfAgent(resource("ra", "ocf", script=script), ctx)
    r = asyncio.run(a.start())
    assert (r.state, r.severity) == (state, severity), r
    assert ocf.CODE_NAMES[code] in r.detail
    # a failed start has run stop already; a successful one keeps its record
    assert (record(ctx, "ra") is not None) == (state == "online")


@pytest.mark.parametrize("action, code, started_here, state, severity", [
    ("monitor", 0, True, "online", None),
    ("monitor", 7, False, "offline", None),
    ("monitor", 7, True, "failed", "soft"),
    ("monitor", 1, True, "failed", "soft"),
    ("monitor", 5, True, "failed", "hard"),
    ("monitor", 6, False, "failed", "fatal"),
    ("stop", 0, True, "offline", None),
    ("stop", 7, True, "offline", None),
    ("stop", 1, True, "failed", "soft"),
    ("stop", 42, True, "failed", "soft"),
    ("stop", -9, True, "failed", "soft"),
])
def test_ocf_classify(action, code, started_here, state, severity):
    r = ocf.classify(action, code, started_here)
    assert (r.state, r.severity) == (state, severity), r


LIFECYCLE = r'''state="$OCF_RESKEY_state"
case "$1" in
  start) env > "$OCF_RESKEY_envfile"; touch "$state"; exit 0;;
  stop) rm -f "$state"; exit 0;;
  monitor) [ -e "$state" ] && exit 0; exit 7;;
  meta-data) echo '<?xml version="1.0"?><resource-agent name="lifecycle"/>'; exit 0;;
  *) exit 3;;
esac
'''


def test_ocf_lifecycle_params_and_environment(ctx, tmp_path):
    script = write_script(tmp_path, "lifecycle", LIFECYCLE)
    state, envfile = tmp_path / "state", tmp_path / "env"
    ctx.move_properties = {"mode": "live"}
    a = OcfAgent(resource("svc", "ocf", script=script, params={"state": str(state), "envfile": str(envfile)}), ctx)

    async def body():
        assert (await a.monitor()).state == "offline"  # not started here, not running
        r = await a.start()
        assert r.state == "online", r
        assert state.exists() and record(ctx, "svc") is not None
        assert (await a.start()).state == "online"  # runs already: no second start (one witness line)
        assert (await a.monitor()).state == "online"
        assert await a.meta_data() == '<?xml version="1.0"?><resource-agent name="lifecycle"/>\n'
        s = await a.stop()
        assert s.state == "offline" and not state.exists() and record(ctx, "svc") is None
        assert (await a.monitor()).state == "offline"

    asyncio.run(body())
    env = dict(line.split("=", 1) for line in envfile.read_text().splitlines() if "=" in line)
    assert env["OCF_RESKEY_state"] == str(state)
    assert env["OCF_RESOURCE_INSTANCE"] == "svc-name"
    assert env["OCF_RESOURCE_TYPE"] == "lifecycle"
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "20000"
    assert env["CLUSTERD_MOVE_mode"] == "live" and env["CLUSTERD_NODE"] == "n1"
    assert [(w["event"], w["pid"]) for w in witness_lines(ctx.witness)] == [("start", None), ("stop", None)]


def test_ocf_monitor_failure_after_start_and_adopt(ctx, tmp_path):
    script = write_script(tmp_path, "lifecycle", LIFECYCLE)
    state = tmp_path / "state"
    res = resource("svc", "ocf", script=script, params={"state": str(state), "envfile": str(tmp_path / "env")})

    async def body():
        assert (await OcfAgent(res, ctx).start()).state == "online"
        adopted = await OcfAgent(res, ctx).adopt()  # a daemon restart: the script says it runs
        assert adopted.state == "online"
        state.unlink()  # the service dies
        m = await OcfAgent(res, ctx).monitor()
        assert (m.state, m.severity) == ("failed", "soft")  # started here, so not running is a failure
        assert await OcfAgent(res, ctx).adopt() is None  # not running: the stale record goes
        assert record(ctx, "svc") is None

    asyncio.run(body())
    assert [w["event"] for w in witness_lines(ctx.witness)] == ["start", "stop"]


def test_ocf_action_timeout_kills_the_action_process_group(ctx, tmp_path, started):
    pidfile = tmp_path / "pids"
    script = write_script(tmp_path, "slow", f'''case "$1" in
  start) sleep 60 & echo $$ $! > "{pidfile}"; wait; exit 0;;
  stop) exit 0;;
  *) exit 7;;
esac
''')
    a = OcfAgent(resource("slow", "ocf", script=script, timeout=0.5), ctx)

    async def body():
        t0 = time.monotonic()
        task = asyncio.ensure_future(a.start())
        text = await until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="pids written")
        pids = [int(p) for p in text.split()]
        started(*pids)
        r = await task
        assert (r.state, r.severity) == ("failed", "soft") and "timed out after 0.5 s" in r.detail, r
        assert time.monotonic() - t0 < 5
        await until(lambda: not any(running(p) for p in pids), timeout=5, what="action group gone")
        assert record(ctx, "slow") is None  # the stop after the failed start succeeded

    asyncio.run(body())


def test_ocf_failed_stop_keeps_the_record(ctx, tmp_path):
    script = write_script(tmp_path, "sticky", 'case "$1" in start) exit 0;; stop) exit 1;; *) exit 0;; esac\n')
    a = OcfAgent(resource("sticky", "ocf", script=script), ctx)

    async def body():
        assert (await a.start()).state == "online"
        s = await a.stop()
        assert (s.state, s.severity) == ("failed", "soft") and "OCF_ERR_GENERIC" in s.detail
        assert record(ctx, "sticky") is not None

    asyncio.run(body())
    assert [w["event"] for w in witness_lines(ctx.witness)] == ["start"]  # no stop line: not confirmed


LEAVES_A_DAEMON = r'''state="$OCF_RESKEY_state"
case "$1" in
start) "$OCF_RESKEY_py" -c "import time; time.sleep(600)" "$OCF_RESKEY_marker" &
  touch "$state"; [ -e "$state.slow" ] && sleep 600; exit 0;;
stop) [ -e "$state.stuck" ] && sleep 600; rm -f "$state"; exit 0;;
monitor) [ -e "$state" ] && exit 0; exit 7;;
*) exit 3;;
esac
'''


def daemon_of(tmp_path, name, started, **props):
    """An OCF resource whose start leaves a process in its process group (found by a marker),
    whose stop forgets it, and which hangs in start or stop while state.slow / state.stuck exist."""
    marker = f"clusterd-ocf-daemon-{uuid.uuid4()}"
    state = str(tmp_path / f"{name}.state")
    res = resource(name, "ocf", script=write_script(tmp_path, f"{name}.sh", LEAVES_A_DAEMON),
                   params={"state": state, "py": PY, "marker": marker}, **props)

    def copies():
        pids = [p.pid for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
        started(*pids)
        return pids
    return res, state, copies


def test_ocf_failed_stop_kills_the_process_group_of_its_start(ctx, tmp_path, started):
    """A stop that times out SIGKILLs what the start left in its process group at once (within
    the stop bound), and stays a failure (the script did not confirm); kill() then ends it."""
    res, state, copies = daemon_of(tmp_path, "stuck", started, timeout=5, stop_timeout=1)
    a = OcfAgent(res, ctx)

    async def body():
        assert (await a.start()).state == "online"
        assert len(copies()) == 1
        open(state + ".stuck", "w").close()
        t0 = time.monotonic()
        s = await a.stop()
        assert s.state == "failed" and "timed out" in s.detail, s
        assert time.monotonic() - t0 < 1 + timing.KILL_WAIT + 2
        assert copies() == [], "the stop failed and left the start's process running"
        assert record(ctx, "stuck") is not None  # not confirmed: it may still run
        os.unlink(state + ".stuck")
        k = await a.kill()
        assert k.state == "offline" and record(ctx, "stuck") is None

    asyncio.run(body())
    assert [w["event"] for w in witness_lines(ctx.witness)] == ["start", "stop"]


def test_ocf_nothing_of_its_start_outlives_a_confirmed_stop_or_adopt(ctx, tmp_path, started):
    res, state, copies = daemon_of(tmp_path, "leaky", started)

    async def body():
        a = OcfAgent(res, ctx)
        assert (await a.start()).state == "online" and len(copies()) == 1
        assert (await a.stop()).state == "offline"
        assert copies() == [], "a stopped resource left a process of its start running"
        assert (await a.start()).state == "online" and len(copies()) == 1
        os.unlink(state)  # it stopped by itself, but what its start left runs on
        assert await OcfAgent(res, ctx).adopt() is None
        assert copies() == [] and record(ctx, "leaky") is None

    asyncio.run(body())


def test_ocf_start_cancelled_leaves_a_witness_start_and_a_record_that_stops_it(ctx, tmp_path, started):
    """A start cancelled while its script runs (the daemon's SIGTERM): the script may have started
    something, so the witness has its start line and the record names its process group."""
    res, state, copies = daemon_of(tmp_path, "cancelled", started)
    open(state + ".slow", "w").close()
    a = OcfAgent(res, ctx)

    async def body():
        task = asyncio.ensure_future(a.start())
        await until(lambda: os.path.exists(state), what="the start script runs")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert record(ctx, "cancelled")["groups"], "the start's process group is not recorded"
        assert [w["event"] for w in witness_lines(ctx.witness)] == ["start"]
        os.unlink(state + ".slow")
        assert (await a.stop()).state == "offline"
        assert copies() == [] and record(ctx, "cancelled") is None

    asyncio.run(body())
    assert [w["event"] for w in witness_lines(ctx.witness)] == ["start", "stop"]


@pytest.mark.parametrize("rtype,properties,field", [("process", {"args": SLEEPER}, "pid"),
                                                     ("dummy", {}, "state")])
def test_a_start_cancelled_in_its_record_write_keeps_the_record_and_its_witness_line(
        ctx, started, monkeypatch, rtype, properties, field):
    """SIGTERM of the daemon cancels a start while its record is being written (fsync): the write
    ends all the same, the witness has the start line, and the stop that follows ends it all."""
    from clusterd.agents import records
    gate, writing, write = threading.Event(), threading.Event(), records.write

    def slow_write(path, data):
        if field in data and not gate.is_set():
            writing.set()
            gate.wait(10)
        write(path, data)
    monkeypatch.setattr(records, "write", slow_write)
    a = agents.create(resource("c", rtype, **properties), ctx)

    async def body():
        task = asyncio.ensure_future(a.start())
        await until(writing.is_set, what="the record write begins")
        task.cancel()
        await asyncio.sleep(0.1)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        rec = record(ctx, "c")
        assert rec is not None and field in rec, "the record write was lost to the cancellation"
        if rtype == "process":
            started(rec["pid"])
        assert [w["event"] for w in witness_lines(ctx.witness)] == ["start"]
        assert (await a.stop()).state == "offline"
        assert record(ctx, "c") is None
        if rtype == "process":
            assert not running(rec["pid"])

    asyncio.run(body())
    assert [w["event"] for w in witness_lines(ctx.witness)] == ["start", "stop"]


def test_ocf_missing_script(ctx, tmp_path):
    a = OcfAgent(resource("missing", "ocf", script=str(tmp_path / "nowhere")), ctx)

    async def body():
        r = await a.start()
        assert (r.state, r.severity) == ("failed", "hard") and "cannot run" in r.detail
        assert record(ctx, "missing") is None
        assert (await a.stop()).state == "offline"
        assert await a.meta_data() is None

    asyncio.run(body())
    assert witness_lines(ctx.witness) == []


# -- dummy ------------------------------------------------------------------------------------
def test_dummy_delays_and_the_move_property_list(ctx):
    ctx.move_properties = {"mode": "live", "weight": 3}
    a = DummyAgent(resource("d", "dummy", start_delay=0.3, stop_delay=0.2), ctx)

    async def body():
        t0 = time.monotonic()
        r = await a.start()
        assert r.state == "online" and time.monotonic() - t0 >= 0.3
        assert record(ctx, "d")["move_properties"] == {"mode": "live", "weight": 3}
        assert record(ctx, "d")["node"] == "n1"
        t0 = time.monotonic()
        assert (await a.stop()).state == "offline"
        assert time.monotonic() - t0 >= 0.2
        assert record(ctx, "d") is None

        await a.start()
        t0 = time.monotonic()
        s = await a.stop(timeout=0.05)  # stop_delay past the timeout: cut short
        assert s.state == "offline" and "stopped hard" in s.detail
        assert time.monotonic() - t0 < 0.2

    asyncio.run(body())


def test_dummy_stop_without_a_timeout_is_cut_at_its_stop_timeout(ctx):
    """The fence delay counts timing.stop_timeout of every resource: a dummy's stop_delay past it
    is cut there, also when the caller gives no timeout (the executor does not)."""
    a = DummyAgent(resource("slow", "dummy", stop_delay=600), ctx)

    async def body():
        await a.start()
        s = await asyncio.wait_for(a.stop(), timing.stop_timeout("dummy", {}) + 5)
        assert s.state == "offline" and "stopped hard" in s.detail and record(ctx, "slow") is None

    asyncio.run(body())


def test_kill_stops_a_process_that_ignores_sigterm_at_once(ctx, started, tmp_path):
    """Agent.kill (after a failed stop) gives no grace: SIGKILL of the group, not stop_timeout,
    and no SIGTERM first (a handler would run: cleanup that a kill must not wait for)."""
    termed = tmp_path / "got-sigterm"
    handler = f"lambda *_: open({str(termed)!r}, 'w').close()"
    ignore = [PY, "-c", f"import signal, time; signal.signal(signal.SIGTERM, {handler}); time.sleep(600)"]
    a = ProcessAgent(resource("stubborn", "process", args=ignore, stop_timeout=300), ctx)

    async def body():
        r = await a.start()
        started(r.pid)
        await asyncio.sleep(0.5)  # the interpreter has installed its handler
        k = await asyncio.wait_for(a.kill(), timing.KILL_WAIT + 5)
        assert k.state == "offline" and "SIGKILL" in k.detail
        assert not running(r.pid) and record(ctx, "stubborn") is None

    asyncio.run(body())
    assert not termed.exists(), "kill sent SIGTERM first"


def test_dummy_injected_failures(ctx, tmp_path):
    fail_file = tmp_path / "fail"

    async def body():
        r = await DummyAgent(resource("f", "dummy", fail_start=True), ctx).start()
        assert (r.state, r.severity) == ("failed", "soft") and record(ctx, "f") is None
        assert (await DummyAgent(resource("f", "dummy", fail_start=["n2"]), ctx).start()).state == "online"
        m = await DummyAgent(resource("f", "dummy", fail_monitor=True), ctx).monitor()
        assert (m.state, m.severity) == ("failed", "soft")

        a = DummyAgent(resource("f", "dummy", fail_file=str(fail_file)), ctx)
        assert (await a.start()).detail == "already running"  # never a second one
        assert (await a.monitor()).state == "online"
        fail_file.write_text("")  # exists: fails on every node
        assert (await a.monitor()).state == "failed"
        fail_file.write_text("n2 n3\n")  # only on those nodes
        assert (await a.monitor()).state == "online"
        fail_file.write_text("n1\n")
        assert (await a.monitor()).state == "failed"
        fail_file.write_bytes(b"\xff\xfe n2\n")  # not UTF-8: read all the same, names n2 only
        assert (await a.monitor()).state == "online"
        fail_file.unlink()
        assert (await a.monitor()).state == "online"

        crash_file = tmp_path / "crash"
        c = DummyAgent(resource("f", "dummy", crash_file=str(crash_file)), ctx)
        crash_file.write_text("")
        for call in (c.start, c.monitor, c.stop, lambda: c.prepare_move({})):
            with pytest.raises(RuntimeError, match="injected crash"):
                await call()
        crash_file.unlink()
        assert (await c.monitor()).state == "online"

        os.unlink(os.path.join(ctx.resources_dir, "f.json"))  # its state vanishes under it
        assert (await a.monitor()).state == "failed"

    asyncio.run(body())
    assert [w["event"] for w in witness_lines(ctx.witness)] == ["start"]  # the failed start left no line


def test_dummy_locked_and_not_now(ctx, tmp_path):
    lock_file, not_now_file = tmp_path / "lock", tmp_path / "not-now"

    async def body():
        r = await DummyAgent(resource("l", "dummy", locked=True), ctx).start()
        assert r.locked and not r.not_now
        a = DummyAgent(resource("l", "dummy", lock_file=str(lock_file), not_now_file=str(not_now_file)), ctx)
        m = await a.monitor()
        assert (m.state, m.locked, m.not_now) == ("online", False, False)
        lock_file.touch()
        not_now_file.touch()
        m = await a.monitor()
        assert (m.locked, m.not_now) == (True, True)
        assert "not possible now" in m.detail

    asyncio.run(body())


def test_dummy_adopt(ctx):
    res = resource("a", "dummy")

    async def body():
        assert await DummyAgent(res, ctx).adopt() is None
        await DummyAgent(res, ctx).start()
        again = DummyAgent(res, ctx)
        assert (await again.adopt()).state == "online"
        assert (await again.start()).detail == "already running"
        assert (await again.stop()).state == "offline"
        assert await DummyAgent(res, ctx).adopt() is None

    asyncio.run(body())


# -- what a node left behind, and the witness -------------------------------------------------
def test_leftovers_lists_recorded_resources(ctx, started):
    res_p = resource("p", "process", args=SLEEPER)
    res_d = resource("d", "dummy")

    async def body():
        r = await ProcessAgent(res_p, ctx).start()
        started(r.pid)
        await DummyAgent(res_d, ctx).start()
        found = sorted(agents.leftovers(ctx.data_dir), key=lambda x: x["id"])
        assert found == [res_d, res_p]
        # the executor can stop a leftover from its record alone
        for res in found:
            assert (await agents.create(res, ctx).stop(timeout=5)).state == "offline"
        assert agents.leftovers(ctx.data_dir) == []
        assert not running(r.pid)

    asyncio.run(body())


def test_witness_property_and_lines(ctx, tmp_path, started):
    own = tmp_path / "own-witness.jsonl"

    async def body():
        d = DummyAgent(resource("w1", "dummy", witness=str(own)), ctx)  # the property wins over the context
        p = ProcessAgent(resource("w2", "process", args=SLEEPER), ctx)
        await d.start()
        r = await p.start()
        started(r.pid)
        await p.stop(timeout=5)
        await d.stop()
        return r.pid

    pid = asyncio.run(body())
    for path, rid, expect_pid in ((str(own), "w1", None), (ctx.witness, "w2", pid)):
        lines = witness_lines(path)
        assert [w["event"] for w in lines] == ["start", "stop"]
        for w in lines:
            assert set(w) == {"event", "resource", "node", "t", "pid"}
            assert (w["resource"], w["node"], w["pid"]) == (rid, "n1", expect_pid)
        assert lines[0]["t"] <= lines[1]["t"] <= time.monotonic()
