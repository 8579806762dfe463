"""The files an agent keeps: one JSON record per resource, and the shared witness file.

A record is written to a temporary file, fsynced and renamed over the old one (then the
directory is fsynced), so after a crash it is either the old record or the new one, never
half of one. A record exists exactly while the resource may be running on this node.
"""
import json
import logging
import os

log = logging.getLogger("clusterd.agents")

SUFFIX = ".json"


def read(path):
    """The record at path, or None if there is none. An unreadable record is logged and
    reported as None (it cannot be trusted to name a process)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.error("unreadable resource record %s: %s", path, e)
        return None
    return data if isinstance(data, dict) else None


def write(path, data):
    """Replace the record at path with data, atomically and durably."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def all_in(directory):
    """Every record in directory (the resources a node may still be running): a list of dicts."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.endswith(SUFFIX):
            rec = read(os.path.join(directory, name))
            if rec is not None:
                out.append(rec)
    return out


def append_line(path, obj):
    """Append obj as one JSON line with a single O_APPEND write, so lines written by several
    processes into one file never interleave. Returns an error string, or None."""
    line = (json.dumps(obj, sort_keys=True) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            written = os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as e:
        return f"witness {path}: {e.strerror or e}"
    if written != len(line):
        return f"witness {path}: short write ({written} of {len(line)} bytes)"
    return None
