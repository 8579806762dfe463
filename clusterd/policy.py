"""The windows of the restart and failover policies, in command time (the "at" of commands):
one definition for every handler that counts restarts or failovers."""
from .schema import Record


def within(times: list[float], at: float, period: float) -> list[float]:
    """The times less than `period` seconds before `at`."""
    return [t for t in times if at - t < period]


def recent_failovers(g: Record, at: float) -> list[float]:
    """The group's failovers within its failover period (the policy's period_hours)."""
    return within(g["failures"], at, g["failover"]["period_hours"] * 3600)


def failovers_exhausted(g: Record, at: float) -> bool:
    """The group has failed over its threshold of times within the period: it stays Failed."""
    return len(recent_failovers(g, at)) >= int(g["failover"]["threshold"])


def recent_restarts(r: Record, at: float) -> list[float]:
    """The resource's restarts within its restart policy's period."""
    return within(r["restarts"], at, r["restart"]["period"])
