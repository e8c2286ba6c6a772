"""The ceiling: a bare grpc.aio server that answers Decide with the request's own bytes.

Same process model as `decision serve` (N spawned workers on one SO_REUSEPORT
port, uvloop), no parsing, no Redis, no rules: what gRPC in Python costs here.
The handler is a coroutine, as the decision server's are: grpc.aio runs a plain
function on a thread pool, which answers 1.7-1.8x fewer calls.

    python -m loadtest.echo_server --port 50061 --workers 2
"""

from __future__ import annotations

import argparse
import sys

import grpc

from loadtest.workers import run_workers


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def setup(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        "decision.v1.DecisionService",
        {"Decide": grpc.unary_unary_rpc_method_handler(_echo)},  # identity (de)serializers: raw bytes
    )
    server.add_generic_rpc_handlers((handler,))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    return run_workers(args.host, args.port, args.workers, setup)


if __name__ == "__main__":
    sys.exit(main())
