"""The gRPC edge: server, servicer (proto <-> domain, status codes), guards (authentication, request guard,
RPC metrics), TLS."""
