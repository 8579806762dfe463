"""The timing model's numbers, as pure functions: how long a resource's stop can take at worst.

One source for every stop timeout: the agents stop with `stop_timeout(type, properties)` and
escalate to SIGKILL after it, waiting at most KILL_WAIT for the kill to take; the leader's
fence delay counts `group_stop_bound`, the sum over a group's resources (they stop one after
another). Pure: no clock, no I/O, no import of the agents themselves.
"""
DEFAULT_STOP_TIMEOUT = 10.0  # process agent
OCF_DEFAULT_TIMEOUT = 20.0  # ocf agent: every action, and stop unless stop_timeout is set
KILL_WAIT = 5.0  # after SIGKILL, how long a stop waits for the processes to vanish


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
