"""Child processes for the Raft crash tests (run as scripts, killed with SIGKILL on purpose).

journal DIR N KEEP K   add entries 0..N-1 to a DurableJournal (printing "ack i" once each add
                       has returned), then compact it to entries KEEP.. with a fault point that
                       kills this process with SIGKILL at the K-th step; prints "compacted" if
                       it survives.
replica DIR PORT N [STEP]  a one-node Replica: commit N commands (printing "ack i"), force a
                       compaction and wait for it (killed with SIGKILL at its step STEP if
                       given); prints the final state as JSON.
"""
import asyncio
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from raft import Replica, journal  # noqa: E402


def kill_at(k):
    count = [0]

    def fault(name):
        count[0] += 1
        if count[0] == k:
            print("killed at", name, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    return fault


def entry(i):
    return (b"command-%d-" % i + b"x" * (i % 7), i + 1, 1 + i // 5)


def compact(directory, n, keep, k):
    j = journal.DurableJournal(os.path.join(directory, "raft.journal"))
    for i in range(n):
        j.add(*entry(i))
        print("ack", i, flush=True)
    journal.fault_point = kill_at(k)
    j.deleteEntriesTo(keep)
    print("compacted", flush=True)


def append(state, command):
    state["log"].append(command)
    return len(state["log"])


async def replica(directory, port, n, kill_step=None):
    r = Replica(self_addr=f"127.0.0.1:{port}", partners=[], data_dir=directory, password="test",
                token_timeout=0.5, apply=append, state={"log": []})
    deadline = time.monotonic() + 30
    while not r.ready() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    for i in range(n):
        await r.submit(i, timeout=10)
        print("ack", i, flush=True)
    if kill_step:
        journal.fault_point = lambda name: name == kill_step and os.kill(os.getpid(), signal.SIGKILL)
    r._obj.forceLogCompaction()
    while r.status()["log_len"] > 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    print(json.dumps(r.read(lambda s: s["log"])), flush=True)
    r.close()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "journal":
        compact(args[0], *map(int, args[1:]))
    elif mode == "replica":
        asyncio.run(replica(args[0], int(args[1]), int(args[2]), *args[3:]))
