"""What the server puts in front of its services: authentication, the request guard, TLS on the port."""

from __future__ import annotations

import grpc

from decision.api.auth import TokenAuthInterceptor
from decision.api.request_guard import RequestGuardInterceptor
from decision.api.tls import server_credentials
from decision.settings import Settings


def interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """Authentication first (a caller without a token learns nothing about parsing), then the guard."""
    chain: list[grpc.aio.ServerInterceptor] = []
    if settings.auth_tokens:
        chain.append(TokenAuthInterceptor(settings.auth_tokens))
    chain.append(RequestGuardInterceptor())
    return chain


def add_port(server: grpc.aio.Server, settings: Settings) -> int:
    """Listen on ``host:port`` with TLS (or mutual TLS) when configured, else plaintext; returns the port."""
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    if credentials is None:
        return int(server.add_insecure_port(address))
    return int(server.add_secure_port(address, credentials))
