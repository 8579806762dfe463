"""Secrets and privilege, from the outside: real daemons on 127.0.0.1.

- the cluster token is in no file of any data dir (not in raft.journal, raft.dump, records);
- data dirs are 0700 and every file in them 0600;
- a daemon refuses to start when its token file, users file or data dir is open to others;
- the pool-admin still reads the token, from the node's token file.
"""
import os
import stat
import subprocess
import sys

import pytest

from clusterd import config
from clusterd.errors import ClusterError
from conftest import running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "security") as c:
        yield c


def _token(cluster):
    with open(os.path.join(cluster.dir, "cluster.token"), "rb") as f:
        return f.read().strip()


def _data_dirs(cluster):
    return [os.path.join(os.path.dirname(n["config"]), "data") for n in cluster.meta()["nodes"]]


def _write_some(cluster):
    """Enough writes that the journal holds more than the bootstrap, and a resource running (its
    agent keeps a record in its owner's data dir while it may run)."""
    with cluster.client("node1") as c:
        ref = c.Cluster.get_all()[0]
        for i in range(20):
            c.Cluster.add_to_other_config(ref, f"security-{i}", "x")
        for i in range(20):
            c.Cluster.remove_from_other_config(ref, f"security-{i}")
        if not any(g["name"] == "security-running" for g in c.Group.get_all_records()):
            c.Group.create("security-running")
            c.Resource.create("security-running", "security-dummy", "dummy", {})
        assert c.Operation.wait(c.Group.online("security-running")["handle"], 30)["status"] == "succeeded"


def _files(cluster):
    return [os.path.join(root, name) for d in _data_dirs(cluster) for root, _dirs, names in os.walk(d)
            for name in names]


def test_the_token_is_in_no_file_of_a_data_dir(cluster):
    _write_some(cluster)
    token = _token(cluster)
    files = _files(cluster)
    for path in files:
        with open(path, "rb") as f:
            assert token not in f.read(), path
    assert len(files) >= 3 * 2 + 1  # at least a journal and an incarnation per node, and a record
    assert any(os.sep + "resources" + os.sep in path for path in files)


def test_data_dirs_are_0700_and_their_files_0600(cluster):
    _write_some(cluster)
    for d in _data_dirs(cluster):
        for root, dirs, names in os.walk(d):
            assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
            for name in names:
                path = os.path.join(root, name)
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert any(os.sep + "resources" + os.sep in path for path in _files(cluster))  # a record among them


def test_the_pool_admin_reads_the_token_from_the_token_file(cluster):
    with cluster.client("node2") as c:
        ref = c.Cluster.get_all()[0]
        assert c.Cluster.get_cluster_token(ref) == _token(cluster).decode()
    with cluster.client("node2", "operator") as c:
        assert c.Cluster.get_record(ref)["cluster_token"] == ""


# -- refusing to start ---------------------------------------------------------------------------
def _start(cluster, name, tmp_path, **override):
    """Run a daemon with the node's config, some keys overridden; it must exit by itself."""
    import tomllib
    import tomli_w
    with open(cluster.node(name)["config"], "rb") as f:
        cfg = tomllib.load(f)
    cfg.update(override)
    path = tmp_path / "node.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    return subprocess.run([sys.executable, "-m", "clusterd", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("what", ["token_file", "users_file"])
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_secret_file_open_to_others_is_refused(cluster, tmp_path, what, mode):
    src = cluster.node("node1")["config"]
    import tomllib
    with open(src, "rb") as f:
        original = tomllib.load(f)[what]
    copy = tmp_path / "secret"
    copy.write_bytes(open(original, "rb").read())
    copy.chmod(mode)
    done = _start(cluster, "node1", tmp_path, **{what: str(copy), "data_dir": str(tmp_path / "data")})
    assert done.returncode == 2, done.stderr
    assert str(copy) in done.stderr and "others" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_a_data_dir_open_to_others_is_refused(cluster, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    d.chmod(0o755)
    done = _start(cluster, "node1", tmp_path, data_dir=str(d))
    assert done.returncode == 2, done.stderr
    assert str(d) in done.stderr and "others" in done.stderr
    assert os.listdir(d) == []


def test_a_missing_data_dir_is_created_0700(tmp_path):
    d = tmp_path / "new" / "data"
    config.prepare_data_dir(str(d))
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    config.prepare_data_dir(str(d))  # again: it is ours and private


# -- least privilege: what names a program or a path to write is pool-admin's ----------------------
def _denied(c, method, *args, needs="pool-admin"):
    with pytest.raises(ClusterError) as e:
        c.call(method, *args)
    assert e.value.code == "RBAC_PERMISSION_DENIED", e.value
    assert e.value.params == [method, needs]


def _resources(cluster):
    with cluster.client("node1") as c:
        return sorted(r["name"] for r in c.Resource.get_all_records())


PROCESS = {"args": ["/bin/sleep", "1000"]}


@pytest.mark.parametrize("user", ["reader", "operator"])
@pytest.mark.parametrize("case, rtype, properties", [
    (1, "process", PROCESS),
    (2, "process", {"args": ["sleep", "1000"], "env": {"PATH": "/tmp"}}),
    (3, "ocf", {"script": "/bin/true"}),
    (4, "dummy", {"witness": "/etc/passwd"}),
])
def test_below_pool_admin_no_resource_names_a_program_or_a_path(cluster, user, case, rtype, properties):
    group = f"priv-{user}-{case}"
    with cluster.client("node1") as a:
        a.Group.create(group)
    before = _resources(cluster)
    with cluster.client("node1", user) as c:
        # a reader may create no resource at all; an operator none of these
        _denied(c, "Resource.create", group, f"r-{user}-{case}", rtype, properties,
                needs="pool-operator" if user == "reader" else "pool-admin")
    assert _resources(cluster) == before


def test_an_operator_may_not_change_a_program_but_may_run_it(cluster):
    with cluster.client("node1") as a:
        a.Group.create("priv-run")
        a.Resource.create("priv-run", "priv-proc", "process", PROCESS)
    with cluster.client("node2", "operator") as c:
        _denied(c, "Resource.set_properties", "priv-proc", {"args": ["/bin/sh", "-c", "id"]})
        _denied(c, "Resource.set_properties", "priv-proc", {**PROCESS, "cwd": "/tmp"})
        _denied(c, "Resource.set_properties", "priv-proc", {**PROCESS, "witness": "/tmp/w"})
        c.Resource.set_properties("priv-proc", {**PROCESS, "stop_timeout": 5})  # the same program
        op = c.Group.online("priv-run")
        assert c.Operation.wait(op["handle"], 30)["status"] == "succeeded"
        op = c.Group.offline("priv-run")
        assert c.Operation.wait(op["handle"], 30)["status"] == "succeeded"
        rec = c.Resource.get_record("priv-proc")
    assert rec["properties"] == {**PROCESS, "stop_timeout": 5}


def test_an_exit_program_is_pool_admin_only(cluster):
    with cluster.client("node1") as a:
        a.Group.create("priv-domain")
    with cluster.client("node1", "operator") as c:
        _denied(c, "Domain.create", "priv-domain", "primary-backup", ["node1", "node2"], ["primary", "backup"],
                "/bin/true")
        c.Domain.create("priv-domain", "primary-backup", ["node1", "node2"], ["primary", "backup"], None)
        assert c.Domain.get("priv-domain")["exit_program"] in (None, "")
