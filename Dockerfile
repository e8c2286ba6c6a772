# Inbound Decisioning: the decision service (and the audience-sync CLI) in a slim image.
FROM python:3.11-slim AS build
# durable-rules compiles its C engine from source.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY decision ./decision
# decision/examples links here: the samples ship in the wheel (decision demo reads them from the package).
COPY examples ./examples
COPY audience_sync ./audience_sync
COPY inbound_common ./inbound_common
# Every command works in the image: receive and console (aiohttp), Parquet exports, watch on S3
# (`--build-arg EXTRAS=otel` for the decision service alone, with spans; add gcs, azure or sftp for those stores).
ARG EXTRAS=receive,console,parquet,watch,s3
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir ".[$EXTRAS]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin decision
COPY --from=build /opt/venv /opt/venv
COPY examples /app/examples
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DECISION_PORT=50051
WORKDIR /app
USER decision
EXPOSE 50051
# gRPC health checking (grpc.health.v1), the same check a Kubernetes grpc probe makes; in TLS when
# DECISION_TLS_CERT is set (give the TLS options as environment variables: the check reads them too).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-m", "decision.cli.healthcheck"]
ENTRYPOINT ["decision"]
CMD ["serve", "--rules", "/app/examples/retail/rules.yaml"]
