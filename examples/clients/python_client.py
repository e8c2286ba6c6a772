"""A Python client: ask for a decision, then record an impression of the offer shown.

    ./dev python examples/clients/python_client.py --profile p-1001

The server is DECISION_TARGET (default localhost:50051). Any language with gRPC works the same way:
the service is described in proto/decision/v1/decision.proto, and the server answers reflection.
"""

from __future__ import annotations

import argparse
import os
import uuid

import grpc
from google.protobuf import timestamp_pb2

from decision.v1 import decision_pb2, decision_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default=os.environ.get("DECISION_TARGET", "localhost:50051"))
    parser.add_argument("--profile", default="p-1001")
    args = parser.parse_args()

    with grpc.insecure_channel(args.target) as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decision_pb2.DecideRequest(
            profile_id=args.profile,
            channel="web",
            placements=[decision_pb2.PlacementRequest(placement_id="home_banner")],
        )
        request.context["page_path"].string_value = "/"
        request.context["cart_value"].number_value = 120
        response = stub.Decide(request, timeout=2.0)
        item = response.propositions[0].items[0]
        print(f"decided: {item.offer_id} (ruleset {response.ruleset_version})")

        # The page showed it: record an impression with the item's tracking token.
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        event = decision_pb2.Event(
            event_id=str(uuid.uuid4()),  # a retried batch with the same ids counts once
            profile_id=args.profile,
            type=decision_pb2.EVENT_TYPE_IMPRESSION,
            tracking_token=item.tracking_token,
            timestamp=now,
        )
        result = stub.RecordEvents(decision_pb2.RecordEventsRequest(events=[event]), timeout=2.0).results[0]
        outcome = decision_pb2.EventOutcome.Name(result.outcome).removeprefix("EVENT_OUTCOME_")
        print(f"impression of {item.offer_id}: {outcome}" + (f" ({result.reason})" if result.reason else ""))
        return 0 if result.outcome == decision_pb2.EVENT_OUTCOME_RECORDED else 1


if __name__ == "__main__":
    raise SystemExit(main())
