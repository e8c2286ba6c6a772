"""The gRPC edge: server, servicer (proto <-> domain, status codes), interceptors, authentication, TLS."""
