"""The Raft journal and dump survive a kill -9 at every step of a compaction."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from raft.journal import DurableJournal

CHILD = os.path.join(os.path.dirname(__file__), "raft_child.py")
sys.path.insert(0, os.path.dirname(__file__))
import raft_child  # noqa: E402


def run_child(*args, timeout=60):
    p = subprocess.run([sys.executable, CHILD, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout


def test_compaction_killed_at_every_step_keeps_every_entry(tmp_path):
    n, keep = 40, 25
    killed_at = []
    for k in range(1, 100):
        directory = tmp_path / f"k{k}"
        directory.mkdir()
        rc, out = run_child("journal", directory, n, keep, k)
        acked = [int(line.split()[1]) for line in out.splitlines() if line.startswith("ack ")]
        assert acked == list(range(n)), out
        entries = list(DurableJournal(str(directory / "raft.journal")))
        expected = [raft_child.entry(i) for i in range(n)]
        # either the journal before the compaction or after it; never a hole
        assert entries in (expected, expected[keep:]), (k, out, len(entries))
        if "compacted" in out:
            assert rc == 0 and entries == expected[keep:]
            break
        assert rc == -9, out
        killed_at.append(out.splitlines()[-1].split()[-1])
    else:
        raise AssertionError("the compaction never finished")
    assert killed_at == ["journal.write", "journal.fsync", "journal.rename", "journal.dirsync"]


def synced_renames(trace):
    """The strace lines of fsync/fdatasync and rename, in order, as (call, paths)."""
    calls = []
    for line in trace.splitlines():
        m = re.search(r"(fsync|fdatasync|rename\w*)\((.*)\)\s*=\s*0", line)
        if m:
            calls.append((m.group(1), re.findall(r'[<"]([^<>"]+)[>"]', m.group(2))))
    return calls


def test_dump_is_durable_before_compaction_drops_entries(tmp_path):
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    from clusterctl.lab.launcher import free_ports
    (port,) = free_ports(1, 0)
    data = tmp_path / "data"
    out = subprocess.run(["strace", "-f", "-y", "-qq", "-o", str(tmp_path / "trace"),
                          "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
                          sys.executable, CHILD, "replica", str(data), str(port), "30"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == list(range(30))
    calls = synced_renames((tmp_path / "trace").read_text())
    dump, tmp, journal = str(data / "raft.dump"), str(data / "raft.dump.tmp"), str(data / "raft.journal")

    def first(call, *paths, after=-1):
        for i, (c, args) in enumerate(calls):
            if i > after and c.startswith(call) and all(p in args for p in paths):
                return i
        raise AssertionError(f"no {call}{paths} in {calls}")
    synced = first("fsync", tmp)
    renamed = first("rename", tmp, dump)
    dir_synced = next(i for i, (c, a) in enumerate(calls) if i > renamed and c == "fsync" and a == [str(data)])
    compacted = first("rename", journal + ".tmp", journal, after=renamed)
    assert synced < renamed < dir_synced < compacted


def test_entries_after_a_newer_dump_survive_a_restart(tmp_path):
    """Killed after the dump is durable, before the journal is compacted: the journal still
    starts before the dump. Entries after the dump's (here added as a follower would have
    acknowledged them) must survive the restart; pysyncobj cleared the journal then."""
    from clusterctl.lab.launcher import free_ports
    (port,) = free_ports(1, 0)
    data = tmp_path / "data"
    rc, out = run_child("replica", data, port, 30, "journal.write")
    assert rc == -9 and out.count("ack ") == 30, out
    j = DurableJournal(str(data / "raft.journal"))
    command, idx, term = j[len(j) - 1]
    for i in range(1, 4):
        j.add(command, idx + i, term)
    j._destroy()
    rc, out = run_child("replica", data, port, 0)
    assert rc == 0, out
    assert json.loads(out.splitlines()[-1]) == list(range(30)) + [29] * 3


COMPACTION_STEPS = ["dump.fsync", "dump.rename", "dump.dirsync",
                    "journal.write", "journal.fsync", "journal.rename", "journal.dirsync"]


@pytest.mark.parametrize("step", COMPACTION_STEPS)
def test_a_replica_killed_at_a_step_of_its_compaction_keeps_every_acknowledged_command(tmp_path, step):
    from clusterctl.lab.launcher import free_ports
    (port,) = free_ports(1, 0)
    data = tmp_path / "data"
    rc, out = run_child("replica", data, port, 40, step)
    assert rc == -9 and out.count("ack ") == 40, out  # killed at that step, after 40 commits
    rc, out = run_child("replica", data, port, 0)
    assert rc == 0, out
    assert json.loads(out.splitlines()[-1]) == list(range(40))
