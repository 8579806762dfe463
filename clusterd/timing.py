"""The timing model's numbers, as pure functions (docs/timing.md has the model and its proof).

One source for every stop timeout: the agents stop with `stop_timeout(type, properties)` and
escalate to SIGKILL after it, waiting at most KILL_WAIT for the kill to take; a group's
resources stop one after another, so `group_stop_bound` is their sum. The lease runs for
`lease_length` (the effective token) from its holder's own send time of a heartbeat the leader
echoed (lease.py); `fence_delay` is how long the leader waits, from `lease.fence_clock_start`,
before a lost node's groups may start elsewhere. Pure: no clock, no I/O, no agents imported.
"""
DEFAULT_STOP_TIMEOUT = 10.0  # process agent
OCF_DEFAULT_TIMEOUT = 20.0  # ocf agent: every action, and stop unless stop_timeout is set
KILL_WAIT = 5.0  # after SIGKILL, how long a stop waits for the processes to vanish
REACTION = 0.5  # from its lease deadline to the owner beginning to stop (executor, or keeper)
DRIFT = 0.01  # the most any node's clock rate may differ from real time, as a fraction
MARGIN = 1.0  # seconds added to the fence delay for what the model leaves out (scheduling)


def stop_timeout(rtype, properties):
    """Seconds a resource's stop may take before it is killed."""
    props = properties if isinstance(properties, dict) else {}
    if rtype == "ocf":
        return float(props.get("stop_timeout", props.get("timeout", OCF_DEFAULT_TIMEOUT)))
    return float(props.get("stop_timeout", DEFAULT_STOP_TIMEOUT))


def resource_stop_bound(resource):
    """The longest a stop of this resource record can take: its stop timeout, then the kill."""
    return stop_timeout(resource.get("type"), resource.get("properties")) + KILL_WAIT


def group_stop_bound(state, group):
    """The longest the whole group takes to stop: its resources stop one after another."""
    return sum(resource_stop_bound(state["resources"][rid]) for rid in group["resources"])


def node_stop_bound(state, node: str) -> float:
    """The longest a node takes to stop everything it owns: its groups stop side by side, so
    the slowest group's bound (0 if it owns none)."""
    return max((group_stop_bound(state, g) for g in state["groups"].values() if g["owner"] == node), default=0.0)


def lease_length(effective_token: float) -> float:
    """LEASE: how long a lease runs from its holder's send time of the echoed heartbeat."""
    return float(effective_token)


def fence_delay(lease: float, stop_bound: float) -> float:
    """Seconds, on the leader's clock from max(its election, its last grant to the node), until
    the node's groups may start elsewhere: the node's lease (from its own send time, never later
    than the grant), its reaction, its slowest group's whole stop and the margin, all stretched
    by the clock-rate drift of both clocks (the node's measures the lease and the stops, the
    leader's the wait). A stale leader adds nothing from this clock start: every lease it can
    still grant ends within LEASE of this leader's election (docs/timing.md)."""
    return (lease + REACTION + stop_bound + MARGIN) * (1 + DRIFT) / (1 - DRIFT)
