"""The floor: what any decision server on this stack pays before deciding anything.

A grpc.aio server, same process model as `decision serve`, whose Decide
parses the DecideRequest, reads the profile's memberships with one HGETALL
through the decision store's fast path (ProfileStore.read_membership), and
answers a fixed DecideResponse. Between the echo (the ceiling) and
`decision serve`, it says how much of the gap is the service's own work.

    python -m loadtest.floor_server --port 50062 --redis-url redis://127.0.0.1:6379 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from decision.store.connect import connect
from decision.store.profiles import ProfileStore
from decision.v1 import decision_pb2, decision_pb2_grpc
from loadtest.workers import run_workers

REDIS_URL_ENV = "FLOOR_REDIS_URL"  # spawned workers read it: the setup function is pickled by name only


def _answer() -> decision_pb2.DecideResponse:
    response = decision_pb2.DecideResponse(ruleset_version="floor", request_id="floor", decision_id="0" * 32)
    for placement in ("home_banner", "cart_upsell"):
        proposition = response.propositions.add(placement_id=placement)
        proposition.items.add(offer_id="offer_0001", content_json='{"title": "Offer 1"}', rule="r1", priority=50)
    return response


class FloorServicer(decision_pb2_grpc.DecisionServiceServicer):  # type: ignore[misc]
    def __init__(self, store: ProfileStore) -> None:
        self.store = store
        self.answer = _answer()

    async def Decide(
        self, request: decision_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> decision_pb2.DecideResponse:
        await self.store.read_membership(request.profile_id)
        return self.answer


async def setup(server: grpc.aio.Server) -> None:
    store = ProfileStore(connect(os.environ[REDIS_URL_ENV], timeout=1.0))
    decision_pb2_grpc.add_DecisionServiceServicer_to_server(FloorServicer(store), server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50062)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ[REDIS_URL_ENV] = args.redis_url
    return run_workers(args.host, args.port, args.workers, setup)


if __name__ == "__main__":
    sys.exit(main())
