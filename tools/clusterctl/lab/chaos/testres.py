"""A self-witnessing test resource, for chaos runs: run it with the `process` agent.

    python testres.py --witness FILE --group G [--control FILE] [--port P]

It appends JSON lines to the witness file itself (one O_APPEND write each, so lines from
processes on every node interleave whole): a "start" line when it begins, an "alive" line every
PERIOD seconds while it lives, and an "exit" line when it ends on its own terms. Each line has
{"event", "group", "resource", "node", "pid", "t"}; t is time.monotonic(), which on Linux is
CLOCK_MONOTONIC, one clock for every process on the machine (network namespaces included). The
node and resource come from the environment the agent gives (CLUSTERD_NODE, CLUSTERD_RESOURCE).
Because the resource writes its own lines, nothing an agent or a daemon gets wrong can hide a
run: a process that ran has a start line, and it ran at least until its last line.

With --port it listens on 127.0.0.1:P (SO_REUSEPORT, so that a second copy on the same loopback
is a witnessed double run rather than a bind error) for the agent's check_tcp.

Faults. The control file (written by the nemesis, polled every PERIOD) holds a JSON list of
{"fault", "node" ("*" for all), "resource" ("*" for all), "after", "before", ...}: a fault
applies to a process on that node, of that resource, that started at or after `after` and
before `before` (monotonic; either may be missing). The faults:

    exit        exit with status `code` (the agent's monitor sees a dead process)
    kill        SIGKILL itself (dies without an exit line)
    close_port  close the listening socket and go on living (check_tcp fails)
    slow_start  listen only `seconds` after the start (read once, at the start)
    ignore_term on SIGTERM, live on for `seconds`, then exit
    hang_term   on SIGTERM, live on until SIGKILL

A stop fault seen once is kept for the process's life (a stop that comes after the nemesis
has cleared its fault still behaves as told). Standard library only: it runs under any python3.
"""
import argparse
import json
import os
import signal
import socket
import sys
import time

PERIOD = 0.1
STOP_FAULTS = ("ignore_term", "hang_term")


class Resource:
    def __init__(self, witness, group, control, port):
        self.witness, self.group, self.control, self.port = witness, group, control, port
        self.node = os.environ.get("CLUSTERD_NODE", "?")
        self.name = os.environ.get("CLUSTERD_RESOURCE", "?")
        self.pid = os.getpid()
        self.started = time.monotonic()
        self.listener = None
        self.stop_fault = None  # the stop behaviour latched from the control file
        self.term_at = None  # monotonic time of the SIGTERM, once it came

    def write(self, event, **extra):
        line = json.dumps({"event": event, "group": self.group, "resource": self.name, "node": self.node,
                           "pid": self.pid, "t": time.monotonic(), **extra}) + "\n"
        fd = os.open(self.witness, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def faults(self):
        """The control file's faults that apply to this process now."""
        if not self.control:
            return []
        try:
            with open(self.control) as f:
                entries = json.load(f)
        except (OSError, ValueError):
            return []
        if not isinstance(entries, list):
            return []
        return [e for e in entries if isinstance(e, dict) and e.get("node", "*") in ("*", self.node)
                and e.get("resource", "*") in ("*", self.name)
                and self.started >= e.get("after", float("-inf")) and self.started < e.get("before", float("inf"))]

    def listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        s.setblocking(False)
        self.listener = s

    def accept_all(self):
        """Take and close pending health-check connections, so the backlog never fills."""
        while self.listener is not None:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, OSError):
                return
            conn.close()

    def on_term(self, signum, frame):
        if self.term_at is None:
            self.term_at = time.monotonic()
            self.write("term", behaviour=(self.stop_fault or {}).get("fault", "exit"))

    def step(self, now):
        """One poll: act on the faults; return an exit status to end with, or None."""
        for f in self.faults():
            kind = f.get("fault")
            if kind == "exit":
                return int(f.get("code", 1))
            if kind == "kill":
                os.kill(self.pid, signal.SIGKILL)
            if kind == "close_port" and self.listener is not None:
                self.listener.close()
                self.listener = None
                self.write("closed_port")
            if kind in STOP_FAULTS and self.stop_fault is None:
                self.stop_fault = f
        if self.term_at is not None:
            fault = self.stop_fault or {"fault": "ignore_term", "seconds": 0}
            if fault["fault"] == "ignore_term" and now - self.term_at >= float(fault.get("seconds", 0)):
                return 0  # (hang_term: never; only SIGKILL ends it)
        return None

    def run(self, slow_start):
        self.write("start", slow_start=slow_start)
        signal.signal(signal.SIGTERM, self.on_term)
        listen_at = self.started + slow_start
        next_line = self.started + PERIOD
        while True:
            now = time.monotonic()
            if self.port and self.listener is None and now >= listen_at and not self._closed():
                self.listen()
                self.write("listening", port=self.port)
            self.accept_all()
            code = self.step(now)
            if code is not None:
                self.write("exit", code=code)
                return code
            if now >= next_line:
                self.write("alive")
                next_line = now + PERIOD
            time.sleep(max(0.0, min(next_line, now + PERIOD) - time.monotonic()))

    def _closed(self):
        return any(f.get("fault") == "close_port" for f in self.faults())


def main(argv=None):
    p = argparse.ArgumentParser(description="a self-witnessing test resource")
    p.add_argument("--witness", required=True, help="the shared witness file (JSON lines, appended)")
    p.add_argument("--group", required=True, help="the group's name, as the witness records it")
    p.add_argument("--control", help="the fault control file the nemesis writes")
    p.add_argument("--port", type=int, default=0, help="listen on 127.0.0.1:PORT for check_tcp")
    a = p.parse_args(argv)
    res = Resource(os.path.abspath(a.witness), a.group, a.control, a.port)
    slow = [float(f.get("seconds", 0)) for f in res.faults() if f.get("fault") == "slow_start"]
    return res.run(max(slow, default=0.0))


if __name__ == "__main__":
    sys.exit(main())
