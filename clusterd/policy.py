"""The windows of the restart and failover policies, in command time (the "at" of commands):
one definition for every handler that counts restarts or failovers."""


def within(times, at, period):
    """The times less than `period` seconds before `at`."""
    return [t for t in times if at - t < period]


def recent_failovers(g, at):
    """The group's failovers within its failover period (the policy's period_hours)."""
    return within(g["failures"], at, g["failover"]["period_hours"] * 3600)


def failovers_exhausted(g, at):
    """The group has failed over its threshold of times within the period: it stays Failed."""
    return len(recent_failovers(g, at)) >= g["failover"]["threshold"]


def recent_restarts(r, at):
    """The resource's restarts within its restart policy's period."""
    return within(r["restarts"], at, r["restart"]["period"])
