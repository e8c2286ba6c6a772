"""The receiver's process: what it logs of requests aiohttp refuses before any handler runs."""

from __future__ import annotations

import asyncio
import signal

import aiohttp

from tests.audience_sync.helpers import spawn

TOKEN = "Bearer " + "t0k3n" * 1800  # 9,007 bytes: over aiohttp's 8,190-byte limit on a header


async def test_a_header_over_the_size_limit_gets_400_and_one_log_line_without_its_content(redis_url: str) -> None:
    process = spawn("receive", "--host", "127.0.0.1", "--port", "0", "--no-auth", redis_url=redis_url)
    try:
        assert process.stdout is not None and process.stderr is not None
        url = (await asyncio.to_thread(process.stdout.readline)).decode().split("listening on ")[1].strip()
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.post(url + "/v1/profiles", data=b"[]", headers={"Authorization": TOKEN}) as response:
                    assert response.status == 400
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
        logged = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = logged.splitlines()
    assert "Traceback" not in logged, logged
    assert "t0k3n" not in logged, logged  # the credential is not written to the log
    refused = [line for line in lines if "answered 400" in line]
    assert len(refused) == 3, logged  # one line per refused request
    assert refused[0].endswith("answered 400 (LineTooLong: a header or the request line over 8190 bytes; "
                               "the request is not logged)")  # fmt: skip
