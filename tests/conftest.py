"""Fixtures: real clusterd processes on 127.0.0.1, started and stopped with pytest-xprocess."""
import contextlib
import hashlib
import os
import signal
import time
import urllib.request

import psutil
import pytest
from xprocess import ProcessStarter

from clusterctl.lab.launcher import LocalCluster
from clusterd.client import Client
from clusterd.errors import ClusterError


class XCluster(LocalCluster):
    """A LocalCluster whose daemons are xprocess-managed (logs kept by xprocess)."""

    def __init__(self, directory, xprocess):
        super().__init__(directory)
        self.xprocess = xprocess
        # xprocess names are global to the cache dir: make them unique per cluster dir
        self.tag = hashlib.sha1(os.path.abspath(directory).encode()).hexdigest()[:10]

    def _xname(self, name):
        return f"{self.tag}-{name}"

    def start(self, name):
        command = self.command(name)

        class Starter(ProcessStarter):
            pattern = "serving: api"
            args = command
            timeout = 30
            terminate_on_interrupt = True

        pid, _ = self.xprocess.ensure(self._xname(name), Starter, restart=True)
        with open(self.node(name)["pidfile"], "w") as f:
            f.write(str(pid))
        return pid

    def kill(self, name, sig=signal.SIGKILL):
        pid = super().kill(name, sig)
        if sig == signal.SIGKILL:
            psutil.wait_procs([psutil.Process(pid)], timeout=5) if psutil.pid_exists(pid) else None
        return pid

    def names(self):
        return [n["name"] for n in self.meta()["nodes"]]

    def client(self, name, user="admin"):
        creds = self.credentials(user)
        return Client(self.node(name)["api"], creds["user"], creds["password"], timeout=10)

    def node_status(self, name):
        with self.client(name) as c:
            return c.Node.status()

    def cluster_ref(self, name="node1"):
        with self.client(name) as c:
            return c.Cluster.get_all()[0]

    def stop(self):
        for name in self.names():
            info = self.xprocess.getinfo(self._xname(name))
            pid = self.pid(name)
            if pid:
                p = psutil.Process(pid)
                if p.status() == psutil.STATUS_STOPPED:
                    p.send_signal(signal.SIGCONT)
            info.terminate(timeout=10)


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    """Poll predicate() until it returns a truthy value; ClusterError/OSError count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except (ClusterError, OSError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")


def answers(port):
    """The HTTP server on 127.0.0.1:port answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def gone(pid):
    """The process exited (a zombie whose parent has not reaped it counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# Modules without real processes, sockets or namespaces; every other test is marked `cluster`,
# so that `pytest -m "not cluster"` runs the fast part alone.
NOT_CLUSTER = ("test_core", "test_scenarios", "test_apidoc", "test_raft_journal")


def pytest_collection_modifyitems(items):
    for item in items:
        name = item.module.__name__
        if not (name.endswith("_core") or name in NOT_CLUSTER):
            item.add_marker(pytest.mark.cluster)


@contextlib.contextmanager
def running_cluster(tmp_path_factory, xprocess, prefix="cluster", n=3, **create):
    """n real daemons, started, ready and quorate; stopped afterwards (and a network-namespace
    testbed removed: its dir is kept otherwise, for the logs)."""
    c = XCluster(str(tmp_path_factory.mktemp(prefix)), xprocess)
    c.create(n, **create)
    try:
        for name in c.names():
            c.start(name)
        c.wait_quorate(60)
        yield c
    finally:
        c.stop()
        if c.testbed():
            c.destroy()


@pytest.fixture
def make_cluster(tmp_path_factory, xprocess):
    with contextlib.ExitStack() as stack:
        yield lambda n=3: stack.enter_context(running_cluster(tmp_path_factory, xprocess, n=n))


@pytest.fixture
def cluster3(make_cluster):
    return make_cluster(3)
