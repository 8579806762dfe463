"""The named scenarios: which faults, how many nodes, whether root is needed."""

PROCESS_FAULTS = ("kill", "pause")  # signals to the daemons: work on the plain loopback cluster
NETWORK_FAULTS = ("partition-halves", "isolate-leader", "isolate-owner", "bridge", "one-way", "loss")

DESCRIBE = {
    "kill": "kill -9 of a node, restarted after the hold",
    "pause": "SIGSTOP of a node, SIGCONT after the hold",
    "partition-halves": "random majority | minority halves, cut both ways",
    "isolate-leader": "the Raft leader cut off from everyone",
    "isolate-owner": "the node that runs a given group cut off from everyone",
    "bridge": "two halves that both hear one bridge node",
    "one-way": "asymmetric: a node stops hearing everyone (deaf) or being heard (mute)",
    "loss": "random loss of 20-40 % of what one node receives",
}


class Scenario:
    def __init__(self, name, description, faults, nodes=3, duration=60, fixed=False):
        self.name, self.description, self.faults = name, description, tuple(faults)
        self.nodes, self.duration, self.fixed = nodes, duration, fixed

    @property
    def needs_root(self):
        """Network faults need the namespace testbed (root, nftables)."""
        return any(f in NETWORK_FAULTS for f in self.faults)


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
    Scenario("mixed", "every fault kind, drawn at random", PROCESS_FAULTS + NETWORK_FAULTS),
)}
