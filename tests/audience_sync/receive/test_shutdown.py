"""SIGTERM: the listener closes, requests received are answered, half-sent bodies are cut, senders that keep
sending are served or refused before any write; the process exits 0."""

from __future__ import annotations

import asyncio
import collections
import itertools
import signal
from dataclasses import dataclass, field

import aiohttp
import orjson

from audience_sync.store import SyncStore
from tests.audience_sync.helpers import seen_by_readers, spawn
from tests.waiting import DEADLINE, eventually

IN_FLIGHT = 'audience_sync_receive_in_flight{endpoint="/v1/profiles"} 1.0'


async def port_refuses(url: str) -> bool:
    """The listener is closed: a new connection is refused."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    except OSError:
        return True
    writer.close()
    return False


async def test_sigterm_answers_the_request_in_flight(redis_url: str, store: SyncStore) -> None:
    process = spawn("receive", "--host", "127.0.0.1", "--port", "0", "--no-auth", redis_url=redis_url)
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        assert b"listening on http://127.0.0.1:" in line, line
        url = line.decode().split("listening on ")[1].strip()
        body = orjson.dumps([{"profile_id": f"p{i}", "audience_id": "vip"} for i in range(100)])
        async with aiohttp.ClientSession() as http:

            async def push() -> tuple[int, dict[str, int]]:
                async with http.post(url + "/v1/profiles", data=body) as response:
                    return response.status, await response.json()

            async def in_the_receiver() -> bool:
                async with http.get(url + "/metrics") as response:
                    return IN_FLIGHT in await response.text()

            # Redis holds writes (and scripts) until the test lets them go: the push waits in the receiver.
            store.client.execute_command("CLIENT", "PAUSE", str(int(DEADLINE * 1000)), "WRITE")
            try:
                in_flight = asyncio.create_task(push())
                await eventually(in_the_receiver, "the push in flight")
                process.send_signal(signal.SIGTERM)
                await eventually(lambda: port_refuses(url), "the listener closed")
                assert not in_flight.done()
            finally:
                store.client.execute_command("CLIENT", "UNPAUSE")
            status, answer = await in_flight
        assert (status, answer["added"]) == (200, 100)
        assert await asyncio.to_thread(process.wait, DEADLINE) == 0
        assert len(seen_by_readers(store)) == 100
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


HALF_SENT = 20


async def half_sent_push(port: int, profile: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that sent a push's headers and half its body, then stalls (a sender cut off mid-way)."""
    body = orjson.dumps([{"profile_id": f"{profile}-{i}", "audience_id": "vip"} for i in range(50)])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/profiles HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[: len(body) // 2])
    await writer.drain()
    return reader, writer


async def test_sigterm_cuts_half_sent_bodies_at_once_and_answers_the_rest(redis_url: str, store: SyncStore) -> None:
    """Half-sent bodies do not hold the stop until --shutdown-timeout: cut, nothing of them written."""
    process = spawn(
        "receive", "--host", "127.0.0.1", "--port", "0", "--no-auth", "--shutdown-timeout", "300",
        redis_url=redis_url,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        url = line.decode().split("listening on ")[1].strip()
        port = int(url.rsplit(":", 1)[1])
        stalled = [await half_sent_push(port, f"half{i}") for i in range(HALF_SENT)]
        body = orjson.dumps([{"profile_id": f"p{i}", "audience_id": "vip"} for i in range(100)])
        async with aiohttp.ClientSession() as http:

            async def push() -> tuple[int, dict[str, int]]:
                async with http.post(url + "/v1/profiles", data=body) as response:
                    return response.status, await response.json()

            store.client.execute_command("CLIENT", "PAUSE", "1500", "WRITE")  # the complete push waits, in flight
            complete = asyncio.create_task(push())
            every = f'audience_sync_receive_in_flight{{endpoint="/v1/profiles"}} {HALF_SENT + 1}.0'
            while True:
                async with http.get(url + "/metrics") as response:
                    if every in await response.text():
                        break
            process.send_signal(signal.SIGTERM)
            status, answer = await complete
        assert (status, answer["added"]) == (200, 100)
        # The stop did not wait for the stalled senders (a 300 s timeout; the deadline here is generous).
        assert await asyncio.to_thread(process.wait, 60) == 0
        for reader, writer in stalled:
            assert await reader.read() == b""  # closed without an answer: the sender retries
            writer.close()
        assert len(seen_by_readers(store)) == 100  # only the complete push was written
        assert process.stderr is not None
        assert b"Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


CALLERS = 50
STALLED = 5
NAMESPACES = ("--identity-namespace", "ECID", "--identity-namespace", "CRMID")
# What a caller may meet once the stop began, besides an answer: the listener closed (refused), its
# connection closed or reset before an answer (a request the receiver never started).
NO_ANSWER = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def identities(push: str) -> list[str]:
    """The profile ids a push writes to: two profiles, an ECID and a CRMID each."""
    return [f"{kind}-{push}-{n}" for n in (1, 2) for kind in ("e", "c")]


def aep_push(push: str) -> bytes:
    """A small push as the AEP HTTP API destination sends it: two profiles, one audience each."""
    membership = {"vip": {"status": "realized", "lastQualificationTime": "2026-11-02T10:00:00Z"}}
    return orjson.dumps(
        [
            {"identityMap": {"ECID": [{"id": f"e-{push}-{n}"}], "CRMID": [{"id": f"c-{push}-{n}"}]},
             "segmentMembership": {"ups": membership}}
            for n in (1, 2)
        ]
    )  # fmt: skip


@dataclass
class Pushers:
    """CALLERS senders that push, one after another, until told to stop: through a SIGTERM and after it."""

    url: str
    started: set[str] = field(default_factory=set)
    answered: dict[str, int] = field(default_factory=dict)  # push -> HTTP status
    unanswered: dict[str, str] = field(default_factory=dict)  # push -> what the caller met instead
    refused_after_exit: set[int] = field(default_factory=set)  # the callers refused once the receiver exited
    exited: bool = False
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _caller(self, http: aiohttp.ClientSession, caller: int) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            push = f"{caller}.{n}"
            exited = self.exited
            self.started.add(push)
            try:
                async with http.post(self.url + "/v1/profiles", data=aep_push(push)) as response:
                    await response.read()
                    self.answered[push] = response.status
            except NO_ANSWER as exc:
                self.unanswered[push] = type(exc).__name__
                if exited and isinstance(exc, aiohttp.ClientConnectorError):
                    self.refused_after_exit.add(caller)
                await asyncio.sleep(0)  # refused at once: let the others run

    async def run(self) -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CALLERS)) as http:
            await asyncio.gather(*(self._caller(http, caller) for caller in range(CALLERS)))

    def stop(self) -> None:
        self._stop.set()

    def ok(self) -> int:
        return sum(status == 200 for status in self.answered.values())

    def in_flight(self) -> set[str]:
        return self.started - set(self.answered) - set(self.unanswered)


async def in_the_receiver(http: aiohttp.ClientSession, url: str) -> float:
    """How many pushes the receiver is handling (its metric)."""
    async with http.get(url + "/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith('audience_sync_receive_in_flight{endpoint="/v1/profiles"}'):
                return float(line.split()[-1])
    return 0.0


async def test_pushers_that_never_stop_are_served_or_refused_before_any_write(redis_url: str, store: SyncStore) -> None:
    """50 senders keep pushing through SIGTERM and after the exit (the orchestrator retries what fails).

    Every push answered 200 is written whole; every other one (503, refused, cut) wrote nothing; none is
    half-written. The receiver exits 0 while they still push: neither they nor half-sent bodies hold the stop."""
    process = spawn(
        "receive", "--host", "127.0.0.1", "--port", "0", "--no-auth", "--shutdown-timeout", "300", *NAMESPACES,
        "--redis-timeout", str(DEADLINE), redis_url=redis_url,
    )  # fmt: skip
    pushers: Pushers | None = None
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        assert b"listening on http://127.0.0.1:" in line, line
        url = line.decode().split("listening on ")[1].strip()
        pushers = Pushers(url)
        pushing = asyncio.create_task(pushers.run())
        await eventually(lambda: pushers.ok() >= 2 * CALLERS, "pushes answered before the stop")
        stalled = [await half_sent_push(int(url.rsplit(":", 1)[1]), f"half{i}") for i in range(STALLED)]
        async with aiohttp.ClientSession() as http:
            # Redis holds writes until the SIGTERM is taken: every sender has a push in flight when it comes.
            store.client.execute_command("CLIENT", "PAUSE", str(int(DEADLINE * 1000)), "WRITE")
            try:

                async def every_sender_in_flight() -> bool:
                    return await in_the_receiver(http, url) == CALLERS + STALLED

                await eventually(every_sender_in_flight, "every sender's push in the receiver")
                before_stop = set(pushers.started)
                at_stop = pushers.in_flight()
                process.send_signal(signal.SIGTERM)
                await eventually(lambda: port_refuses(url), "the listener closed")
            finally:
                store.client.execute_command("CLIENT", "UNPAUSE")
        # The senders keep pushing; the stop does not wait for them (a 300 s timeout, a generous deadline here).
        assert await asyncio.to_thread(process.wait, 60) == 0
        pushers.exited = True
        await eventually(lambda: len(pushers.refused_after_exit) == CALLERS, "every sender refused after the exit")
        pushers.stop()
        await pushing
        for reader, writer in stalled:
            assert await reader.read() == b""  # closed without an answer: the sender retries
            writer.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if pushers is not None:
            pushers.stop()

    seen = seen_by_readers(store)
    assert not any(profile.startswith("half") for profile in seen)  # half-sent bodies: nothing written
    assert set(pushers.answered.values()) <= {200, 503}, collections.Counter(pushers.answered.values())
    written = {push for push, status in pushers.answered.items() if status == 200}
    not_written = set(pushers.answered) - written | set(pushers.unanswered)
    for push in written:  # answered 200: every identity of both profiles has its membership
        assert all(seen.get(profile) == {"vip"} for profile in identities(push)), push
    for push in not_written:  # refused or cut: nothing of it (no half-written push either)
        assert not any(profile in seen for profile in identities(push)), (push, pushers.unanswered.get(push))
    assert len(seen) == 4 * len(written)
    assert len(at_stop) == CALLERS and at_stop <= written  # in flight at SIGTERM: answered, and written
    after = pushers.started - before_stop
    assert after - written, "no push was refused after the stop: the test did not push through it"
    print(
        f"\n{len(written)} pushes answered 200 and written, {len(at_stop)} of them in flight at SIGTERM, "
        f"{len(after & written)} sent after it; {len(after - written)} sent after it refused, none written: "
        f"{collections.Counter(pushers.unanswered.values())}"
    )
    assert process.stderr is not None
    assert b"Traceback" not in process.stderr.read()
