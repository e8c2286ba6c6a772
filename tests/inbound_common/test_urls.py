"""Redis URLs: checked once (inbound_common.urls), the same for the service's and audience_sync's clients."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.store import connect as sync_connect
from decision.store.connect import Target, connect
from inbound_common.urls import SCHEMES, InvalidRedisUrl, parse_redis_url


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://localhost",
        "redis://:s3cret@10.0.0.5:6380/2",
        "redis://user:s3cret@cache.internal:6379/0?socket_timeout=0.5",
        "rediss://cache.example.com:6380/0?ssl_cert_reqs=none",
        "redis://[::1]:6379/0",
        "unix:///run/redis.sock?db=1",
        "redis+cluster://10.0.0.1:7000",
        "rediss+cluster://node-1.example.com:7000/0",
        "REDIS://127.0.0.1:6379/0",
    ],
)
def test_what_is_accepted(url: str) -> None:
    checked = parse_redis_url(url)
    assert checked.url == url
    assert checked.cluster == ("+cluster" in url)
    assert checked.plain.split("://")[0] in ("redis", "rediss", "unix")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://x", "'http' is not one of redis://, rediss://, unix://, redis+cluster://, rediss+cluster://"),
        ("127.0.0.1:6379", "no scheme: expected one of redis://"),
        ("", "no scheme"),
        ("redis://127.0.0.1:notaport/0", "the port 'notaport' is not a number"),
        ("redis://:s3cret@127.0.0.1:notaport/0", "the port 'notaport' is not a number"),
        ("redis://127.0.0.1:99999/0", "port 99999 (a port is 1 to 65535)"),
        ("redis://127.0.0.1:0/0", "port 0"),
        ("redis://127.0.0.1:6379/zero", "the database 'zero' is not a number"),
        ("redis://:6379/0", "no host"),
        ("redis+cluster://", "no host"),
        ("unix://", "unix:// needs the socket's path"),
        ("rediss://h:6380/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of none, optional, required"),
        ("redis://h:6379/0?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
    ],
)
def test_what_is_refused_and_why(url: str, reason: str) -> None:
    with pytest.raises(InvalidRedisUrl) as refused:
        parse_redis_url(url)
    assert str(refused.value).startswith("not a Redis URL: ")
    assert reason in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_both_clients_refuse_a_malformed_url_before_connecting() -> None:
    for build in (connect, sync_connect):
        with pytest.raises(InvalidRedisUrl, match="the port 'notaport' is not a number"):
            build("redis://127.0.0.1:notaport/0")


hosts = st.sampled_from(["127.0.0.1", "localhost", "cache.internal", "[::1]"])
ports = st.none() | st.integers(1, 65535)
databases = st.none() | st.integers(0, 15)


@given(scheme=st.sampled_from(["redis", "rediss"]), host=hosts, port=ports, db=databases, password=st.booleans())
def test_an_accepted_url_builds_a_client_that_connects_where_it_says(
    scheme: str, host: str, port: int | None, db: int | None, password: bool
) -> None:
    auth = ":s3cret@" if password else ""
    url = f"{scheme}://{auth}{host}{'' if port is None else f':{port}'}{'' if db is None else f'/{db}'}"
    parse_redis_url(url)
    target = Target.of_client(connect(url))  # built without a connection: nothing is contacted
    assert target.nodes == ((host.strip("[]"), port or 6379),)
    assert target.db == (db or 0)
    assert (target.tls is not None) == (scheme == "rediss")
    sync_connect(url).close()


@given(st.text(max_size=60) | st.builds("{}://{}".format, st.sampled_from(SCHEMES), st.text(max_size=40)))
def test_anything_the_check_accepts_builds_both_clients(text: str) -> None:
    try:
        parse_redis_url(text)
    except InvalidRedisUrl:
        return
    connect(text)  # no ValueError from redis-py past the check: a malformed URL never reaches a command
    if not parse_redis_url(text).cluster:  # redis-py's synchronous cluster client connects when it is built
        sync_connect(text).close()
