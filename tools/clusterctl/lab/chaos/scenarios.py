"""The named scenarios: which faults, how many nodes, whether root is needed."""

PROCESS_FAULTS = ("kill", "pause")  # signals to the daemons: work on the plain loopback cluster
DAEMON_FAULTS = ("long-pause", "term-during-start")  # also signals, aimed at an owner
RESOURCE_FAULTS = ("resource-fail", "slow-start", "stop-ignores-term", "stop-hangs")  # testres.py
NETWORK_FAULTS = ("partition-halves", "isolate-leader", "isolate-owner", "bridge", "one-way", "loss",
                  "heartbeat-cut", "raft-cut")

DESCRIBE = {
    "kill": "kill -9 of a node, restarted after the hold",
    "pause": "SIGSTOP of a node, SIGCONT after the hold",
    "partition-halves": "random majority | minority halves, cut both ways",
    "isolate-leader": "the Raft leader cut off from everyone",
    "isolate-owner": "the node that runs a given group cut off from everyone",
    "bridge": "two halves that both hear one bridge node",
    "one-way": "asymmetric: a node stops hearing everyone (deaf) or being heard (mute)",
    "loss": "random loss of 20-40 % of what one node receives",
    "resource-fail": "a resource of a group's owner fails its monitor there (exit code, killed, closed port) "
                     "until healed: past its restart policy, the group fails over",
    "slow-start": "a group's resource fails once and every start after is healthy only after 2-8 s",
    "stop-ignores-term": "a group fails over (its g-a fails past its policy) while its g-b ignores SIGTERM "
                         "for 1-6 s (the stop timeout is 3 s)",
    "stop-hangs": "a group fails over while its g-b ignores SIGTERM until SIGKILL",
    "heartbeat-cut": "the owner's heartbeats (UDP) cut both ways, its Raft left connected",
    "raft-cut": "the owner's Raft (TCP) cut both ways, its heartbeats left flowing",
    "long-pause": "SIGSTOP of a group owner's daemon for 2-3 fence delays, then SIGCONT",
    "term-during-start": "SIGTERM of the daemon of a node while it starts a (slow) resource",
}


class Scenario:
    def __init__(self, name, description, faults, nodes=3, duration=60, fixed=False):
        self.name, self.description, self.faults = name, description, tuple(faults)
        self.nodes, self.duration, self.fixed = nodes, duration, fixed

    @property
    def needs_root(self):
        """Network faults need the namespace testbed (root, nftables)."""
        return any(f in NETWORK_FAULTS for f in self.faults)


def single(name, duration=60):
    return Scenario(name, DESCRIBE[name], [name], duration=duration)


SCENARIOS = {s.name: s for s in (
    Scenario("smoke", "one kill, one majority/minority partition, one isolated leader (CI, ~90 s)",
             ["kill", "partition-halves", "isolate-leader"], duration=70, fixed=True),
    Scenario("kill", "kill -9 and restart of random nodes", ["kill"]),
    Scenario("pause", "SIGSTOP / SIGCONT of random nodes", ["pause"]),
    Scenario("crash", "kills and pauses", PROCESS_FAULTS),
    Scenario("partition", "random majority/minority partitions", ["partition-halves"]),
    Scenario("leader", "the leader isolated, again and again", ["isolate-leader"]),
    Scenario("owner", "the owner of a group isolated", ["isolate-owner"]),
    Scenario("bridge", "bridge partitions: two halves sharing one node", ["bridge"], nodes=5),
    Scenario("one-way", "asymmetric one-way cuts", ["one-way"]),
    Scenario("loss", "random packet loss at one node", ["loss"]),
    *(single(f) for f in RESOURCE_FAULTS + ("term-during-start", "heartbeat-cut", "raft-cut")),
    single("long-pause", duration=150),
    Scenario("resources", "every resource fault, drawn at random", RESOURCE_FAULTS),
    Scenario("mixed", "every fault kind, drawn at random",
             PROCESS_FAULTS + DAEMON_FAULTS + RESOURCE_FAULTS + NETWORK_FAULTS),
)}
