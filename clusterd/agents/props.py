"""Pure checks of resource properties. Each returns a list of problems (strings); [] is fine.

The API runs an agent's validate() before anything is committed, so these do no I/O: a
path is checked for its shape, never for its existence (that is the owner node's business).
"""
import ipaddress
import math
import re
from urllib.parse import urlsplit

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def common(properties, allowed):
    """The properties are a map, and every key is one the agent knows (a typo is an error)."""
    if not isinstance(properties, dict):
        return ["properties must be a map"]
    return [f"unknown property {k!r}" for k in sorted(map(str, properties)) if k not in allowed]


def number(properties, key, minimum=0.0, positive=False):
    if key not in properties:
        return []
    v = properties[key]
    if not is_number(v) or v < minimum or (positive and v <= 0):
        return [f"{key} must be a number {'> 0' if positive else f'>= {minimum:g}'}"]
    return []


def boolean(properties, key):
    if key in properties and not isinstance(properties[key], bool):
        return [f"{key} must be true or false"]
    return []


def string(properties, key, required=False, absolute=False):
    if key not in properties:
        return [f"{key} is required"] if required else []
    v = properties[key]
    if not isinstance(v, str) or not v or "\0" in v:
        return [f"{key} must be a non-empty string"]
    if absolute and not v.startswith("/"):
        return [f"{key} must be an absolute path"]
    return []


def string_map(properties, key, names=None):
    """A map of strings to strings; names, if given, is a pattern every key must match."""
    if key not in properties:
        return []
    v = properties[key]
    if not isinstance(v, dict):
        return [f"{key} must be a map of strings"]
    problems = []
    for k, val in v.items():
        if not isinstance(k, str) or not isinstance(val, str) or "\0" in k or "\0" in val:
            problems.append(f"{key}: {k!r} must map a string to a string")
        elif names is not None and not names.match(k):
            problems.append(f"{key}: {k!r} is not a valid name")
    return problems


def string_list(properties, key, required=False):
    if key not in properties:
        return [f"{key} is required"] if required else []
    v = properties[key]
    if (not isinstance(v, list) or not v or not all(isinstance(a, str) and "\0" not in a for a in v)
            or not v[0]):
        return [f"{key} must be a non-empty list of strings"]
    return []


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host_port(text):
    """'127.0.0.1:8080' or '[::1]:8080' -> (host, port); None if it is not that shape."""
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def loopback_tcp(properties, key):
    """HOST:PORT where HOST is a loopback address literal (a health check never leaves the node)."""
    if key not in properties:
        return []
    v = properties[key]
    parsed = split_host_port(v) if isinstance(v, str) else None
    if parsed is None:
        return [f"{key} must be HOST:PORT, e.g. 127.0.0.1:8080"]
    if not _loopback(parsed[0]):
        return [f"{key} must be a loopback address (127.0.0.1), not {parsed[0]!r}"]
    return []


def loopback_http(properties, key):
    """An http:// URL whose host is a loopback address literal."""
    if key not in properties:
        return []
    v = properties[key]
    if not isinstance(v, str):
        return [f"{key} must be an http://127.0.0.1:PORT/... URL"]
    try:
        u = urlsplit(v)
        port = u.port
    except ValueError:
        return [f"{key} is not a valid URL"]
    if u.scheme != "http" or not u.hostname:
        return [f"{key} must be an http://127.0.0.1:PORT/... URL"]
    if not _loopback(u.hostname):
        return [f"{key} must be a loopback address (127.0.0.1), not {u.hostname!r}"]
    if port == 0:
        return [f"{key} has no valid port"]
    return []


def flag(properties, key):
    """true/false, or a list of node names (true on those nodes only)."""
    if key not in properties:
        return []
    v = properties[key]
    if isinstance(v, bool) or (isinstance(v, list) and all(isinstance(n, str) for n in v)):
        return []
    return [f"{key} must be true, false or a list of node names"]
