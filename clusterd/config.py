"""Node configuration: a TOML file, overridden by command-line flags.

    name = "node1"
    raft = "127.0.0.1:7101"          # Raft (pysyncobj) TCP address
    heartbeat = "127.0.0.1:7201"     # membership UDP address
    api = "127.0.0.1:7301"           # client API TCP address
    xapi = "127.0.0.1:7401"          # XenAPI (XML-RPC over HTTP) address; "off" or absent: none
    data_dir = "/var/lib/clusterd/node1"
    token_file = "/etc/clusterd/cluster.token"
    users_file = "/etc/clusterd/users.json"
    token_timeout = 1.0              # seconds
    token_coefficient = 0.65         # seconds per member beyond two
    fence_agent = "watchdog"         # watchdog | process | script (clusterd/fencing.py)
    fence_script = "/usr/local/sbin/fence_site"   # script: an executable, absolute path
    fence_timeout = 60.0             # script: seconds before it counts as failed
    no_quorum_policy = "stop"        # stop | freeze (needs a fence agent that kills) | ignore (demos)
    start_slots = 256                # groups starting at once on this node
    [fence_options]                  # script: more name=value lines for its stdin
    ip = "192.0.2.10"
    [[members]]                      # every configured member, this node included
    name = "node1"
    raft = "127.0.0.1:7101"
    heartbeat = "127.0.0.1:7201"
    api = "127.0.0.1:7301"
"""
import argparse
import ipaddress
import os
import stat
import tomllib
from dataclasses import dataclass, field

MIN_TOKEN_BYTES = 16


class ConfigError(Exception):
    pass


@dataclass
class Config:
    name: str
    raft: str
    heartbeat: str
    api: str
    data_dir: str
    token_file: str
    users_file: str
    token_timeout: float = 1.0
    token_coefficient: float = 0.65
    members: list = field(default_factory=list)
    xapi: str = None  # HOST:PORT of the XenAPI endpoint, None when it is off
    fence_agent: str = "watchdog"  # how the coordinator fences a lost node: watchdog | process | script
    fence_script: str = None  # the script agent's executable
    fence_timeout: float = 60.0
    fence_options: dict = field(default_factory=dict)
    no_quorum_policy: str = "stop"  # without quorum or lease: stop | freeze | ignore (executor.py)
    start_slots: int = 256  # groups starting at once on this node (Pacemaker's node-action-limit); 0x8 moves skip the queue

    def token(self):
        try:
            with open(self.token_file, "rb") as f:
                check_private(self.token_file, os.fstat(f.fileno()), "the cluster token file")
                token = f.read().strip()
        except OSError as e:
            raise ConfigError(f"cannot read the cluster token file {self.token_file}: {e.strerror}") from None
        if len(token) < MIN_TOKEN_BYTES:
            raise ConfigError(f"the cluster token in {self.token_file} is shorter than {MIN_TOKEN_BYTES} bytes")
        return token


def check_private(path, st, what):
    """As ssh does with a private key: refuse a secret that others may read or change."""
    if st.st_uid != os.geteuid():
        raise ConfigError(f"{what} {path} belongs to uid {st.st_uid}, not to this daemon's ({os.geteuid()})")
    if st.st_mode & 0o077:
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
        raise ConfigError(f"{what} {path} is open to others (mode {stat.S_IMODE(st.st_mode):04o}): "
                          f"chmod {'700' if kind == 'directory' else '600'} it")


def check_users_file(path):
    try:
        check_private(path, os.stat(path), "the users file")
    except OSError as e:
        raise ConfigError(f"cannot read the users file {path}: {e.strerror}") from None


def prepare_data_dir(path):
    """The data dir, created 0700 if missing; refused if others may enter it."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        check_private(path, os.stat(path), "the data dir")
    except OSError as e:
        raise ConfigError(f"cannot use the data dir {path}: {e.strerror}") from None


def check_fencing(cfg):
    if cfg.fence_agent not in ("watchdog", "process", "script"):
        raise ConfigError("fence_agent must be watchdog, process or script")
    if cfg.fence_agent == "script":
        path = cfg.fence_script
        if not isinstance(path, str) or not os.path.isabs(path) or not os.access(path, os.X_OK) \
                or not os.path.isfile(path):
            raise ConfigError(f"fence_script: {path!r} is not an executable file given by its absolute path")
    if not isinstance(cfg.fence_timeout, (int, float)) or not 0 < cfg.fence_timeout <= 3600:
        raise ConfigError("fence_timeout must be between 0 and 3600 seconds")
    opts = cfg.fence_options
    if not isinstance(opts, dict) or any(
            not isinstance(k, str) or not k.isidentifier() or not isinstance(v, (str, int, float, bool))
            or "\n" in str(v) for k, v in opts.items()):
        raise ConfigError("fence_options: names are identifiers, values one-line strings or numbers")
    if {"action", "plug", "nodename"} & set(opts):
        raise ConfigError("fence_options: action, plug and nodename are set by clusterd")
    policy = getattr(cfg, "no_quorum_policy", "stop")
    if policy not in ("stop", "freeze", "ignore"):
        raise ConfigError("no_quorum_policy must be stop, freeze or ignore")
    if policy != "stop" and cfg.fence_agent == "watchdog":
        raise ConfigError(f"no_quorum_policy = {policy} keeps resources running without quorum, but the "
                          "watchdog fence relies on the node stopping them itself: use fence_agent process or script")


def check_address(what, value):
    host, sep, port = str(value).rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ConfigError(f"{what}: {value!r} is not HOST:PORT")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{what}: {host!r} is not an IP address") from None
    return value


def parse_member(text):
    """--member NAME=RAFT,HEARTBEAT,API"""
    name, sep, rest = text.partition("=")
    parts = rest.split(",")
    if not sep or len(parts) != 3:
        raise ConfigError(f"--member {text!r}: expected NAME=RAFT,HEARTBEAT,API")
    return {"name": name, "raft": parts[0], "heartbeat": parts[1], "api": parts[2]}


def parser():
    p = argparse.ArgumentParser(prog="clusterd", description="clusterd: one node of a cluster")
    p.add_argument("--config", help="TOML configuration file")
    for flag in ("name", "raft", "heartbeat", "api", "data-dir", "token-file", "users-file"):
        p.add_argument(f"--{flag}")
    p.add_argument("--xapi", metavar="HOST:PORT|off", help="serve the XenAPI (XML-RPC over HTTP) here")
    p.add_argument("--token-timeout", type=float)
    p.add_argument("--token-coefficient", type=float)
    p.add_argument("--member", action="append", default=None, metavar="NAME=RAFT,HEARTBEAT,API",
                   help="a configured member (repeat for each; replaces the file's list)")
    p.add_argument("--log-level", default="INFO")
    return p


def load(argv=None):
    args = parser().parse_args(argv)
    values = {}
    if args.config:
        try:
            with open(args.config, "rb") as f:
                values = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{args.config}: {e}") from None
    for key in ("name", "raft", "heartbeat", "api", "xapi", "data_dir", "token_file", "users_file",
                "token_timeout", "token_coefficient"):
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    if args.member:
        values["members"] = [parse_member(m) for m in args.member]
    return validate(values), args


def validate(values):
    known = set(Config.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
    missing = [k for k in ("name", "raft", "heartbeat", "api", "data_dir", "token_file", "users_file")
               if not values.get(k)]
    if missing:
        raise ConfigError(f"missing configuration: {', '.join(missing)}")
    cfg = Config(**values)
    check_fencing(cfg)
    if not isinstance(cfg.start_slots, int) or isinstance(cfg.start_slots, bool) or not 1 <= cfg.start_slots <= 100000:
        raise ConfigError("start_slots must be an integer from 1 to 100000")
    for what in ("raft", "heartbeat", "api"):
        check_address(what, getattr(cfg, what))
    if cfg.xapi in (None, "", "off"):
        cfg.xapi = None
    elif check_address("xapi", cfg.xapi) in (cfg.api, cfg.raft):
        raise ConfigError(f"xapi: {cfg.xapi} is already the api or raft address")
    if not 0.1 <= float(cfg.token_timeout) <= 300:
        raise ConfigError("token_timeout must be between 0.1 and 300 seconds")
    if not 0 <= float(cfg.token_coefficient) <= 60:
        raise ConfigError("token_coefficient must be between 0 and 60 seconds")
    names = set()
    for m in cfg.members:
        if set(m) - {"name", "raft", "heartbeat", "api", "votes"} or not m.get("name"):
            raise ConfigError(f"member {m!r}: needs name, raft, heartbeat, api (and optional votes)")
        for what in ("raft", "heartbeat", "api"):
            check_address(f"member {m['name']} {what}", m.get(what, ""))
        if m["name"] in names:
            raise ConfigError(f"member {m['name']} is listed twice")
        names.add(m["name"])
    if cfg.name not in names:
        raise ConfigError(f"this node ({cfg.name}) is not among the configured members")
    me = next(m for m in cfg.members if m["name"] == cfg.name)
    if (me["raft"], me["heartbeat"], me["api"]) != (cfg.raft, cfg.heartbeat, cfg.api):
        raise ConfigError(f"member {cfg.name}'s addresses differ from this node's own")
    cfg.data_dir = os.path.abspath(cfg.data_dir)
    return cfg
