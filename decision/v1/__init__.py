"""Generated protobuf and gRPC code for the ``decision.v1`` API (see proto/).

Import as ``from decision.v1 import decision_pb2, decision_pb2_grpc``.
Regenerate with ``python scripts/gen_proto.py``; never edit by hand.
"""
