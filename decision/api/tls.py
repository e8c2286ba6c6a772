"""TLS for the gRPC port: server credentials (TLS, or mutual TLS with a client CA) and client credentials; and
for the console's HTTPS listener, an SSL context checked the same way.

The files are checked when the server starts (a key that does not match its
certificate, a file that is not PEM), so a misconfiguration fails at once with
a message naming the option, not at the first handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc


class TlsConfigError(ValueError):
    """A TLS option is missing, unreadable, or does not hold what it should."""


def _read(path: str, option: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{option} {path}: cannot read: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise TlsConfigError(f"{option} {path}: not a PEM file")
    return data


def _check_pair(cert: str, key: str) -> None:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = f"not a matching certificate and key ({exc})"
        raise TlsConfigError(f"--tls-cert {cert} / --tls-key {key}: {reason}") from None


def _check_ca(ca: str, option: str) -> None:
    try:
        ssl.create_default_context(cafile=ca)
    except ssl.SSLError as exc:
        raise TlsConfigError(f"{option} {ca}: not a CA certificate bundle ({exc})") from None


def server_credentials(
    cert: str | None, key: str | None, client_ca: str | None = None
) -> grpc.ServerCredentials | None:
    """Credentials for ``add_secure_port``; None when TLS is not configured (plaintext)."""
    if cert is None and key is None:
        if client_ca is not None:
            raise TlsConfigError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
        return None
    if cert is None or key is None:
        raise TlsConfigError("--tls-cert and --tls-key go together")
    cert_pem, key_pem = _read(cert, "--tls-cert"), _read(key, "--tls-key")
    _check_pair(cert, key)
    ca_pem = None
    if client_ca is not None:
        ca_pem = _read(client_ca, "--tls-client-ca")
        _check_ca(client_ca, "--tls-client-ca")
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=ca_pem is not None
    )


def server_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The TLS of an HTTPS listener (the console), checked as ``server_credentials`` checks the gRPC port's;
    None when TLS is not configured (plain HTTP)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise TlsConfigError("--tls-cert and --tls-key go together")
    _read(cert, "--tls-cert")
    _read(key, "--tls-key")
    _check_pair(cert, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def channel_credentials(ca: str | None, cert: str | None = None, key: str | None = None) -> grpc.ChannelCredentials:
    """Client credentials: trust ``ca`` (None: the system's roots); ``cert``/``key`` for mutual TLS."""
    if (cert is None) != (key is None):
        raise TlsConfigError("--tls-client-cert and --tls-client-key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=None if ca is None else _read(ca, "--tls-ca"),
        private_key=None if key is None else _read(key, "--tls-client-key"),
        certificate_chain=None if cert is None else _read(cert, "--tls-client-cert"),
    )
