"""Observability: Prometheus metrics, OpenTelemetry spans, JSON logs, secrets kept out of them."""
