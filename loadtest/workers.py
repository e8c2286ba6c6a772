"""The process model of `decision serve` for the benchmark's reference servers.

One worker: serve in this process. N workers: N spawned processes on one
SO_REUSEPORT port, uvloop when installed, SIGTERM forwarded to each.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

Serve = Callable[[grpc.aio.Server], Coroutine[Any, Any, None]]


async def _serve(host: str, port: int, reuse_port: bool, setup: Serve) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if reuse_port else 0)])
    await setup(server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(1.0)


def _run(host: str, port: int, reuse_port: bool, setup: Serve) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.run(_serve(host, port, reuse_port, setup))
    except ImportError:
        asyncio.run(_serve(host, port, reuse_port, setup))


def run_workers(host: str, port: int, workers: int, setup: Serve) -> int:
    """Serve until SIGTERM. ``setup`` (a module-level coroutine function: it is pickled) adds the handlers."""
    if workers <= 1:
        _run(host, port, False, setup)
        return 0
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_run, args=(host, port, True, setup)) for _ in range(workers)]

    def forward(signum: int, _: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    for child in children:
        child.start()
    for child in children:
        child.join()
    return 0
