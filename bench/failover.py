"""Redis Sentinel for the soak (`python -m bench.soak --sentinel`): a replica of the cluster's
redis-server and a sentinel watching both. A failover kills the master -9 (its replica, which
replicates asynchronously, may lack the last writes: they are lost), has the sentinel promote
the replica, and starts the old master again as the new one's replica, ready for the next."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any, cast

import redis

from bench.cluster import REDIS_ARGS, Cluster, free_port

SERVICE = "arqgraph-soak"
TIMEOUT = 60.0  # seconds a failover, or a replica's sync, may take


def wait(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (redis.exceptions.RedisError, OSError):
            pass  # (a server starting, a sentinel refusing: ask again)
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class Sentinels:
    """The cluster's redis-server as a master, its replica and one sentinel (quorum 1); the
    cluster's processes are given the sentinel's URL (`cluster.url`)."""

    def __init__(self, cluster: Cluster) -> None:
        assert cluster.redis_proc is not None, "start the cluster's redis-server first"
        binary = shutil.which("redis-server")
        assert binary is not None
        self.cluster = cluster
        self.binary = binary
        self.dirs = {cluster.port: cluster.workdir}
        self.procs = {cluster.port: cluster.redis_proc}
        replica = free_port()
        self.dirs[replica] = cluster.workdir / "replica"
        self.dirs[replica].mkdir()
        self._start_server(replica, master=cluster.port)
        self.sentinel_port = free_port()
        conf = cluster.workdir / "sentinel.conf"
        conf.write_text(f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {cluster.workdir}\n"
                        f"sentinel monitor {SERVICE} 127.0.0.1 {cluster.port} 1\n"
                        f"sentinel down-after-milliseconds {SERVICE} 2000\n"
                        f"sentinel failover-timeout {SERVICE} 10000\n")
        with open(cluster.workdir / "sentinel.log", "ab") as log:
            self.sentinel = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=log,
                                             stderr=subprocess.STDOUT)
        self.ask = redis.Redis(port=self.sentinel_port, socket_timeout=5)
        wait(lambda: bool(self.ask.sentinel_slaves(SERVICE)), "the sentinel to find the replica")
        cluster.sentinel_url = f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def _start_server(self, port: int, master: int) -> None:
        argv = [self.binary, "--port", str(port), "--bind", "127.0.0.1", *REDIS_ARGS,
                "--dir", str(self.dirs[port]), "--daemonize", "no", "--maxclients", "20000",
                "--replicaof", "127.0.0.1", str(master)]
        with open(self.dirs[port] / f"redis-{port}.log", "ab") as log:
            self.procs[port] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def master(self) -> int:
        return int(self.ask.sentinel_get_master_addr_by_name(SERVICE)[1])

    def fail_over(self) -> None:
        """Kill the master -9 once its replica follows it, wait until the sentinel has promoted
        the replica, and start the old master again as the new one's replica."""
        old = self.master()
        new = next(port for port in self.procs if port != old)
        def following() -> bool:
            info = cast(dict[str, Any], redis.Redis(port=new).info("replication"))
            return info["master_link_status"] == "up"

        wait(following, "the replica to follow its master")
        self.procs[old].kill()
        self.procs[old].wait()

        def promoted() -> bool:  # (ask: a sentinel alone waits for the master to seem down)
            return self.master() == new or bool(self.ask.sentinel_failover(SERVICE))

        wait(promoted, "the sentinel to start the failover")
        wait(lambda: self.master() == new, "the failover")
        self.cluster.port = new  # (the bench's own reads go to the master)
        self._start_server(old, master=new)

    def stop(self) -> None:
        for process in (self.sentinel, *self.procs.values()):
            if process.poll() is None:
                process.kill()
            process.wait()
        self.cluster.redis_proc = None
        self.ask.close()
