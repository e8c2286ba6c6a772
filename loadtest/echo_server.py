"""The ceiling: a bare grpc.aio server that answers Decide with the request's own bytes.

Same process model as `decision serve` (N spawned workers on one SO_REUSEPORT
port, uvloop), no parsing, no Redis, no rules: what gRPC in Python costs here.

    python -m loadtest.echo_server --port 50061 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys

import grpc


def _echo(request: bytes, context: object) -> bytes:
    return request


async def serve(host: str, port: int, reuse_port: bool) -> None:
    handler = grpc.method_handlers_generic_handler(
        "decision.v1.DecisionService",
        {"Decide": grpc.unary_unary_rpc_method_handler(_echo)},  # identity (de)serializers: raw bytes
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if reuse_port else 0)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(1.0)


def _run(host: str, port: int, reuse_port: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.run(serve(host, port, reuse_port))
    except ImportError:
        asyncio.run(serve(host, port, reuse_port))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers <= 1:
        _run(args.host, args.port, False)
        return 0
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_run, args=(args.host, args.port, True)) for _ in range(args.workers)]

    def forward(signum: int, _: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
