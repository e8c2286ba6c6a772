# Inbound Decisioning: the decision service (and the audience-sync CLI) in a slim image.
FROM python:3.11-slim AS build
# durable-rules compiles its C engine from source.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY decision ./decision
COPY audience_sync ./audience_sync
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin decision
COPY --from=build /opt/venv /opt/venv
COPY examples /app/examples
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DECISION_PORT=50051
WORKDIR /app
USER decision
EXPOSE 50051
# gRPC health checking (grpc.health.v1), the same check a Kubernetes grpc probe makes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; c = grpc.insecure_channel('127.0.0.1:' + os.environ['DECISION_PORT']); sys.exit(g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=2).status != h.HealthCheckResponse.SERVING)"]
ENTRYPOINT ["decision"]
CMD ["serve", "--rules", "/app/examples/retail/rules.yaml"]
