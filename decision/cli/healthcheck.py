"""The container's health check: gRPC health checking on this host's port, in TLS when the server serves TLS.

Run as ``python -m decision.cli.healthcheck`` (the Dockerfile's HEALTHCHECK); exit status 0 when the
server answers SERVING. It reads the server's own environment: ``DECISION_PORT``, and ``DECISION_TLS_CERT``,
which turns TLS on for both. Then the server's certificate is checked against ``DECISION_HEALTH_CA``
(default: the certificate file itself, right for a self-signed one) under the name
``DECISION_HEALTH_SERVER_NAME`` (default ``localhost``); with mutual TLS (``DECISION_TLS_CLIENT_CA``)
the check presents ``DECISION_HEALTH_CLIENT_CERT`` and ``DECISION_HEALTH_CLIENT_KEY``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def channel(environ: Mapping[str, str]) -> grpc.Channel:
    target = f"127.0.0.1:{environ.get('DECISION_PORT', '50051')}"
    cert = environ.get("DECISION_TLS_CERT")
    if not cert:
        return grpc.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(environ.get("DECISION_HEALTH_CA") or cert),
        private_key=_read(environ.get("DECISION_HEALTH_CLIENT_KEY")),
        certificate_chain=_read(environ.get("DECISION_HEALTH_CLIENT_CERT")),
    )
    name = environ.get("DECISION_HEALTH_SERVER_NAME", "localhost")
    return grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", name)])


def main(environ: Mapping[str, str] = os.environ) -> int:
    with channel(environ) as open_channel:
        try:
            answer = health_pb2_grpc.HealthStub(open_channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as exc:
            print(f"health check failed: {exc.code().name}", file=sys.stderr)
            return 1
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
