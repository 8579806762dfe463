"""Results queues (the IBM i user-queue model): completions of asynchronous requests, keyed
by request handle, posted by pure handlers and read back by clients with Events.read(queue, key).

A queue is created by its first entry. Bounded: the oldest entries go first.
"""
from .schema import Record, State

QUEUES_KEEP = 10000  # entries kept over all queues
MAX_QUEUE_NAME = 64


def valid_queue(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= MAX_QUEUE_NAME and name.isprintable() and name.strip() == name


def post(state: State, queue: str, key: str, entry: Record) -> None:
    """Put `entry` under `key` on `queue`; forget the oldest entries past the bound."""
    queues = state["queues"]
    queues.setdefault(queue, {})[key] = dict(entry, key=key)
    order = state["queue_order"]
    order.append([queue, key])
    while len(order) > QUEUES_KEEP:
        q, k = order.pop(0)
        queues.get(q, {}).pop(k, None)
        if q in queues and not queues[q]:
            del queues[q]


def read(state: State, queue: str, key: str) -> Record | None:
    """The entry, or None when there is none (yet)."""
    return state["queues"].get(queue, {}).get(key)
