"""SIGTERM: the listener closes, a request being written is still answered, the process exits 0."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import orjson

from audience_sync.store import SyncStore
from tests.audience_sync.helpers import seen_by_readers, spawn
from tests.waiting import DEADLINE, eventually

IN_FLIGHT = 'audience_sync_receive_in_flight{endpoint="/v1/profiles"} 1.0'


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

            async def refused() -> bool:  # the listener closes: a new connection is refused
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
                except OSError:
                    return True
                writer.close()
                return False

            # Redis holds writes (and scripts) until the test lets them go: the push waits in the receiver.
            store.client.execute_command("CLIENT", "PAUSE", str(int(DEADLINE * 1000)), "WRITE")
            try:
                in_flight = asyncio.create_task(push())
                await eventually(in_the_receiver, "the push in flight")
                process.send_signal(signal.SIGTERM)
                await eventually(refused, "the listener closed")
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
