"""clusterd: the daemon's entry point. Config, then the asyncio shell on uvloop."""
import asyncio
import logging
import os
import signal
import sys

import uvloop

from . import config, keeper, limits, membership, server, xapi
from .coordinator import Coordinator
from .executor import Executor
from .exitprog import ExitPrograms
from .node import Node

log = logging.getLogger("clusterd")


async def serve(node, incarnation):
    loop = asyncio.get_running_loop()
    cfg = node.cfg
    members = node.members
    m = membership.start(
        cfg.heartbeat, name=cfg.name, token=node.token, token_timeout=cfg.token_timeout,
        coefficient=cfg.token_coefficient, incarnation=incarnation, raft=node.raft_view,
        members=lambda: {n: {"heartbeat": x["heartbeat"], "votes": x.get("votes", 1)} for n, x in members().items()})
    node.attach(loop, m)
    api = await server.start(node, cfg.api, node.gates["api"])
    xapi_runner = await xapi.start(node, cfg.xapi, node.gates["xapi"]) if cfg.xapi else None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # the watchdog fence trusts the node to stop its resources when its lease runs out: the
    # keeper does it when this daemon cannot (killed, paused, hung); re-attach to a running one
    link = await keeper.Link.attach(cfg.data_dir, cfg.name) if cfg.fence_agent == "watchdog" else None
    executor = Executor(node, link)
    tasks = [asyncio.ensure_future(m.run()), asyncio.ensure_future(node.leader_duties()),
             asyncio.ensure_future(_watch_tick_thread(node, stop)), asyncio.ensure_future(executor.run()),
             asyncio.ensure_future(Coordinator(node).run()), asyncio.ensure_future(node.announce()),
             asyncio.ensure_future(ExitPrograms(node).run())]
    log.info("clusterd %s serving: api %s, raft %s, heartbeat %s, xapi %s", cfg.name, cfg.api, cfg.raft,
             cfg.heartbeat, f"http://{cfg.xapi}/" if cfg.xapi else "off")
    await stop.wait()
    log.info("clusterd %s stopping", cfg.name)
    for t in tasks:
        t.cancel()
    await executor.shutdown()  # everything it runs, in-flight starts included
    if link is not None:
        link.release()
    api.close()
    if xapi_runner is not None:
        await xapi_runner.cleanup()


async def _watch_tick_thread(node, stop):
    while True:
        await asyncio.sleep(1.0)
        if not node.replica.tick_thread_alive():
            log.critical("the Raft tick thread died; stopping so that a supervisor restarts this node")
            stop.set()
            return


def main(argv=None):
    os.umask(0o077)  # every file this daemon creates (pysyncobj's journal and dump too) is 0600
    limits.raise_nofile()  # before the servers' caps are computed from it
    try:
        cfg, args = config.load(argv)
        token = cfg.token()
        config.check_users_file(cfg.users_file)
        config.prepare_data_dir(cfg.data_dir)
    except config.ConfigError as e:
        print(f"clusterd: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(),
                        format=f"%(asctime)s {cfg.name} %(name)s %(levelname)s %(message)s")
    try:
        node = Node(cfg, token)  # on the main thread: pysyncobj's tick thread lives as long as it
    except (OSError, ValueError) as e:
        print(f"clusterd: cannot start: {e}", file=sys.stderr)
        return 1
    try:
        incarnation = membership.next_incarnation(cfg.data_dir)
    except (OSError, ValueError) as e:
        node.replica.close()
        print(f"clusterd: cannot start: {e}", file=sys.stderr)
        return 1
    try:
        uvloop.run(serve(node, incarnation))
    finally:
        node.replica.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
