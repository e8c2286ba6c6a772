"""A real Redis Cluster on loopback for the tests: 3 masters, 3 replicas, the embedded redis-server binary.

Each node is an ``EmbeddedRedis`` with ``--cluster-enabled yes``; ``redis-cli --cluster create``
(beside the redis-server binary) assigns the slots and the replicas; ``start`` returns once every
node reports ``cluster_state:ok``. The node timeout is short (1 s) so a failover takes seconds, and
``cluster-require-full-coverage no`` keeps the other slots serving while one master is down.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from decision.store.embedded import EmbeddedRedis, find_redis_server

# Not the workload: statistics, configuration, replication acknowledgements, and a new connection's
# handshake (HELLO, CLIENT SETINFO, AUTH: once per connection, not per decision).
IGNORED_COMMANDS = (
    "cmdstat_info", "cmdstat_config", "cmdstat_replconf", "cmdstat_hello", "cmdstat_client", "cmdstat_auth",
)  # fmt: skip
BUS_PORT_OFFSET = 10000  # Redis 6.2 has no cluster-port option: the bus is always port + 10000
NODE_TIMEOUT_MS = 1000


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pick_ports(count: int) -> list[int]:
    """Ports whose cluster-bus twins are free too (ephemeral ports are too high for port + 10000)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(20000, 45000)
        if port not in chosen and _free(port) and _free(port + BUS_PORT_OFFSET):
            chosen.append(port)
    return chosen


class LocalCluster:
    def __init__(self, masters: int = 3, replicas_per_master: int = 1) -> None:
        self.masters = masters
        self.replicas_per_master = replicas_per_master
        self.binary = find_redis_server()
        self.nodes: list[EmbeddedRedis] = []

    @property
    def url(self) -> str:
        """What the decision service is given: any node; the client discovers the others."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 60.0) -> LocalCluster:
        args = [
            "--cluster-enabled", "yes",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage", "no",
        ]  # fmt: skip
        try:
            for port in _pick_ports(self.masters * (1 + self.replicas_per_master)):
                self.nodes.append(EmbeddedRedis(port=port, extra_args=args, binary=self.binary).start())
            cli = Path(self.binary).with_name("redis-cli")
            addresses = [f"127.0.0.1:{port}" for port in self.ports]
            replicas = ["--cluster-replicas", str(self.replicas_per_master)]
            subprocess.run(
                [str(cli), "--cluster", "create", *addresses, *replicas, "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def info(self, port: int, section: str) -> dict[str, object]:
        with self.client(port) as client:
            return client.info(section)  # type: ignore[no-any-return]

    def cluster_info(self, port: int) -> dict[str, str]:
        with self.client(port) as client:
            raw = client.execute_command("CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.strip().splitlines() if ":" in line)

    def flushall(self) -> None:
        for node in self.primaries():
            with self.client(node.port) as client:
                client.flushall()

    def data_commands(self, port: int) -> dict[str, int]:
        """The node's calls per command since its last CONFIG RESETSTAT, statistics and replication left out."""
        stats = self.info(port, "commandstats")
        return {
            name: int(value["calls"])  # type: ignore[index]
            for name, value in stats.items()
            if name not in IGNORED_COMMANDS and int(value["calls"])  # type: ignore[index]
        }

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """Until every replica has applied all its master has (what WAIT checks for one connection)."""
        deadline = time.monotonic() + timeout
        for node in self.primaries():
            target = int(self.info(node.port, "replication")["master_repl_offset"])  # type: ignore[call-overload]
            for replica in self.alive():
                info = self.info(replica.port, "replication")
                if info.get("role") != "slave" or int(info["master_port"]) != node.port:  # type: ignore[call-overload]
                    continue
                while int(self.info(replica.port, "replication")["slave_repl_offset"]) < target:  # type: ignore[call-overload]
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"replica {replica.port} of {node.port} did not catch up")
                    time.sleep(0.02)

    def alive(self) -> list[EmbeddedRedis]:
        return [node for node in self.nodes if node.process is not None and node.process.poll() is None]

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live node says the cluster is ok with all slots served."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = [self.cluster_info(node.port) for node in self.alive()]
                if all(s.get("cluster_state") == "ok" and s.get("cluster_slots_ok") == "16384" for s in states):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not become ok within {timeout}s")
            time.sleep(0.1)

    def wait_failover(self, dead: EmbeddedRedis, key: str, timeout: float = 30.0) -> EmbeddedRedis:
        """Until a replica of ``dead`` serves ``key``'s slot and the cluster is ok again; returns the new master."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                owner = self.owner(key)
                if owner.port != dead.port:
                    self.wait_ok(max(deadline - time.monotonic(), 0.1))
                    return owner
            except (redis.RedisError, LookupError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica took over from {dead.port} within {timeout}s")
            time.sleep(0.05)

    def owner(self, key: str) -> EmbeddedRedis:
        """The live master serving ``key``'s slot."""
        for node in self.alive():
            with self.client(node.port) as client:
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        port = int(master[1])
                        return next(n for n in self.nodes if n.port == port)
        raise LookupError(key)

    def primaries(self) -> list[EmbeddedRedis]:
        found = []
        for node in self.alive():
            role = self.info(node.port, "replication").get("role")
            if role == "master":
                found.append(node)
        return found

    def kill(self, node: EmbeddedRedis) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        if node.process is not None:
            node.process.kill()
            node.process.wait()
        node.stop()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


async def command_calls(client: Any) -> dict[str, int]:
    """Calls per command (INFO commandstats, ``cmdstat_hgetall`` ...), summed over every node of a Cluster.

    The statistics commands themselves (INFO, CONFIG) and the replicas' REPLCONF acknowledgements are left out.
    """
    if isinstance(client, AsyncRedisCluster):
        per_node = await client.info("commandstats", target_nodes=AsyncRedisCluster.ALL_NODES)
    else:
        per_node = {"": await client.info("commandstats")}
    totals: Counter[str] = Counter()
    for stats in per_node.values():
        for name, value in stats.items():
            if name not in IGNORED_COMMANDS:
                totals[name] += int(value["calls"])
    return dict(totals)


async def reset_command_stats(client: Any) -> None:
    if isinstance(client, AsyncRedisCluster):
        await client.config_resetstat(target_nodes=AsyncRedisCluster.ALL_NODES)
    else:
        await client.config_resetstat()


def node_client_for(redis_url: str, key: str) -> redis.Redis:
    """A plain client on the node serving ``key``: the server itself, or the key's master on a Cluster."""
    if not redis_url.startswith("redis+cluster://"):
        return redis.Redis.from_url(redis_url)
    with redis.RedisCluster.from_url(redis_url.replace("redis+cluster://", "redis://", 1)) as cluster:
        node = cluster.get_node_from_key(key)
        assert node is not None
        return redis.Redis(host=node.host, port=node.port)


async def pause_node(client: Any, key: str, seconds: float) -> None:
    """CLIENT PAUSE ALL on the node serving ``key`` (the server itself on a single Redis): once this returns,
    the node runs no client's command for ``seconds`` (they wait; its replicas are not paused)."""
    command = ("CLIENT", "PAUSE", str(int(seconds * 1000)), "ALL")
    if isinstance(client, AsyncRedisCluster):
        await client.execute_command(*command, target_nodes=client.get_node_from_key(key))
    else:
        await client.execute_command(*command)
