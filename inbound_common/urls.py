"""Redis URLs: which are accepted, how redis-py is given them, how they are shown. Checked once, here.

The service's clients (``decision.store.connect``), audience_sync's
(``audience_sync.store``) and the options of both commands read a URL through
:func:`parse_redis_url`, so a malformed one is refused the same way everywhere,
before anything connects: ``redis://[[user]:password@]host[:port][/db]``,
``rediss://`` (TLS), ``unix:///path/to.sock[?db=N]``, and ``redis+cluster://`` /
``rediss+cluster://`` (any node of a Redis Cluster). Messages never repeat the
URL: it may hold a password; :func:`mask_url` shows one without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit, urlunsplit

# A cluster URL is read by redis-py's cluster client as the plain URL of one of its nodes.
CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SCHEMES: Final = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)
CERT_REQS: Final = ("none", "optional", "required")
MASK: Final = "***"


class InvalidRedisUrl(ValueError):
    """A Redis URL that cannot be used; the message says why, without the URL (it may hold a password)."""


@dataclass(frozen=True, slots=True)
class RedisUrl:
    """A checked Redis URL."""

    # As given (with its password, if any: never print it; mask_url does).
    url: str
    # The URL redis-py's clients are built from: the scheme in lower case, a cluster's plain.
    plain: str
    cluster: bool


def parse_redis_url(url: str) -> RedisUrl:
    """Check ``url``; raises InvalidRedisUrl saying what is wrong (scheme, host, port, database, options)."""
    schemes = ", ".join(f"{s}://" for s in SCHEMES)
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        shown = f"{scheme!r} is not" if sep and scheme else "no scheme: expected"
        raise InvalidRedisUrl(f"not a Redis URL: {shown} one of {schemes}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is no number or out of range, a malformed [IPv6] address
        raise InvalidRedisUrl(f"not a Redis URL: {_port_reason(url, exc)}") from None
    scheme = parts.scheme
    if scheme == "unix":
        if not parts.path:
            raise InvalidRedisUrl("not a Redis URL: unix:// needs the socket's path (unix:///path/to/redis.sock)")
    else:
        if not parts.hostname:
            raise InvalidRedisUrl(f"not a Redis URL: no host ({scheme}://host:port/db)")
        if port == 0:
            raise InvalidRedisUrl("not a Redis URL: port 0 (a port is 1 to 65535)")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise InvalidRedisUrl(f"not a Redis URL: the database {db!r} is not a number (/0, /1...)")
    reqs = parse_qs(parts.query).get("ssl_cert_reqs", [])
    if any(value.lower() not in CERT_REQS for value in reqs):
        raise InvalidRedisUrl(f"not a Redis URL: ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
    plain = CLUSTER_SCHEMES.get(scheme, scheme) + url[len(scheme) :]
    # redis-py, when a URL is checked: importing it costs ~120 ms of CPU here (python -m loadtest.startup), which
    # the commands that need no Redis (decision --help, validate, decide, events) do not pay for their options.
    import redis.connection

    # redis-py's reading of a URL's query options (typed here: it is not in every release).
    parse_url: Callable[[str], Mapping[str, object]] = redis.connection.parse_url
    try:
        parse_url(plain)  # its query options (socket_timeout=..., db=...), as the clients will read them
    except ValueError as exc:
        raise InvalidRedisUrl(f"not a Redis URL: {exc}") from None
    return RedisUrl(url, plain, scheme in CLUSTER_SCHEMES)


def _port_reason(url: str, exc: ValueError) -> str:
    netloc = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0].rpartition("@")[2]
    port = netloc.rpartition("]")[2].partition(":")[2] if netloc.startswith("[") else netloc.partition(":")[2]
    if port and not port.isdigit():
        return f"the port {port!r} is not a number"
    if port:
        return f"port {port} (a port is 1 to 65535)"
    return str(exc)


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``: ``redis://user:***@host:6379/0``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # unparsable: show nothing of it rather than risk a secret
        return f"<unparsable URL, {len(url)} characters>"
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
