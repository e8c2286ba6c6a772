"""Inbound Decisioning: the gRPC decision service and its rule engine."""

__version__ = "0.1.0"
