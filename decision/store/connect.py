"""Redis URLs -> connection options: redis-py clients, and the same options read back for the fast path.

``redis://`` (plain), ``rediss://`` (TLS; certificate options in the query:
``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``,
``ssl_check_hostname``, or given as ``TlsOptions``), and ``redis+cluster://``
/ ``rediss+cluster://`` (any node of a Redis Cluster). The redis-py client is
the one place the options are parsed; ``Target.of_client`` reads them back
from it, so the fast path connects exactly as redis-py does.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from inbound_common.urls import CERT_REQS, parse_redis_url

AnyRedis = aioredis.Redis | RedisCluster

# Raised by store reads; callers treat any of these as "Redis unavailable".
StoreError = (RedisError, OSError, asyncio.TimeoutError)

_CERT_REQS: Final = dict(zip(CERT_REQS, (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED), strict=True))


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """redis-py's certificate options (same names without the ``ssl_`` prefix, same defaults)."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    cert_reqs: str = "required"
    check_hostname: bool = True

    def redis_py_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ssl_cert_reqs": self.cert_reqs, "ssl_check_hostname": self.check_hostname}
        for name in ("ca_certs", "certfile", "keyfile"):
            if getattr(self, name) is not None:
                options[f"ssl_{name}"] = getattr(self, name)
        return options

    @classmethod
    def from_redis_py(cls, options: dict[str, Any]) -> TlsOptions:
        reqs = options.get("ssl_cert_reqs", "required")
        if isinstance(reqs, ssl.VerifyMode):
            reqs = next(name for name, mode in _CERT_REQS.items() if mode == reqs)
        check = options.get("ssl_check_hostname", True)
        return cls(
            ca_certs=options.get("ssl_ca_certs"),
            certfile=options.get("ssl_certfile"),
            keyfile=options.get("ssl_keyfile"),
            cert_reqs=str(reqs or "required").lower(),
            check_hostname=check if isinstance(check, bool) else str(check).lower() in ("1", "true", "yes"),
        )

    def context(self) -> ssl.SSLContext:
        """An SSLContext as redis-py builds one from these options."""
        if self.cert_reqs not in _CERT_REQS:
            raise ValueError(f"ssl_cert_reqs: {self.cert_reqs!r} is not one of {', '.join(_CERT_REQS)}")
        context = ssl.create_default_context()
        context.check_hostname = self.check_hostname and self.cert_reqs != "none"
        context.verify_mode = _CERT_REQS[self.cert_reqs]
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        if self.ca_certs:
            context.load_verify_locations(self.ca_certs)
        return context


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to connect: the nodes given (a Cluster's are discovered from them), credentials, TLS."""

    nodes: tuple[tuple[str, int], ...]
    cluster: bool
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: TlsOptions | None = None
    connect_timeout: float = 1.0
    unix_path: str | None = None  # unix:// URLs

    @classmethod
    def of_client(cls, client: AnyRedis) -> Target:
        """The options a redis-py client was built with."""
        if isinstance(client, RedisCluster):
            options = client.connection_kwargs
            nodes = tuple((n.host, int(n.port)) for n in client.nodes_manager.startup_nodes.values())
        else:
            options = client.connection_pool.connection_kwargs
            nodes = ((str(options.get("host", "localhost")), int(options.get("port", 6379))),)
        if isinstance(client, RedisCluster):
            connection_class = options.get("connection_class", aioredis.Connection)
        else:
            connection_class = client.connection_pool.connection_class
        tls = None
        if issubclass(connection_class, aioredis.SSLConnection):
            tls = TlsOptions.from_redis_py(options)
        unix_path = options.get("path") if issubclass(connection_class, aioredis.UnixDomainSocketConnection) else None
        return cls(
            nodes=nodes,
            cluster=isinstance(client, RedisCluster),
            username=options.get("username"),
            password=options.get("password"),
            db=int(options.get("db", 0) or 0),
            tls=tls,
            connect_timeout=float(options.get("socket_connect_timeout") or 1.0),
            unix_path=unix_path,
        )


def connect(url: str, *, timeout: float = 0.25, max_connections: int = 64, tls: TlsOptions | None = None) -> AnyRedis:
    """A redis-py client for ``redis://``, ``rediss://`` (TLS), or ``redis+cluster://`` URLs.

    ``tls`` (from settings) overrides the certificate options of the URL's query.
    No retries past the deadline: a decision has one, and a failed read is
    answered with fallbacks. One immediate retry on a broken connection only: a
    pooled connection that Redis closed (a restart, a failover) fails once when
    next used, and a fresh one would answer. A malformed URL raises InvalidRedisUrl (a ValueError).
    """
    target = parse_redis_url(url)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if tls is not None:
        if not target.plain.startswith("rediss://"):
            raise ValueError(f"TLS certificate options need a rediss:// URL, not {url.partition('://')[0]}://")
        options.update(tls.redis_py_options())
    if target.cluster:
        return RedisCluster.from_url(target.plain, max_connections=max_connections, **options)
    # A pool that waits for a free connection (within the caller's deadline) rather than failing when
    # all are busy: a burst of decisions must queue, not degrade.
    pool = aioredis.BlockingConnectionPool.from_url(
        target.plain, max_connections=max_connections, timeout=None, **options
    )
    return aioredis.Redis(connection_pool=pool)
