"""Drive a unary gRPC method with h2load (Debian package nghttp2-client) and read its results.

h2load speaks HTTP/2, not gRPC: it sends the same body (a 5-byte gRPC frame
header + the serialized request) on every stream and counts any HTTP 200 as a
success, even when the gRPC status in the trailers is an error. Callers must
check failures another way: :func:`run` reports the DATA bytes received, and a
failed gRPC call (trailers only) carries none.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message


def grpc_frame(message: Message) -> bytes:
    body = message.SerializeToString()
    return b"\x00" + len(body).to_bytes(4, "big") + body


@dataclass(frozen=True, slots=True)
class LoadResult:
    in_flight: int
    requests: int
    succeeded: int
    seconds: float
    data_bytes: int
    latencies_us: tuple[int, ...]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        """Latency in milliseconds."""
        ordered = sorted(self.latencies_us)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1000


def find_h2load() -> str:
    path = shutil.which("h2load")
    if path is None:
        raise SystemExit("h2load is not installed: apt-get install nghttp2-client")
    return path


def run(
    url: str, body: bytes, *, requests: int, in_flight: int, warmup: int = 0, prefix: Sequence[str] = ()
) -> LoadResult:
    """``in_flight`` concurrent calls: up to 8 connections, streams spread over them.

    ``prefix``: a command to run h2load under (the benchmark pins it to a core with taskset).
    """
    connections = min(in_flight, 8)
    streams = max(1, in_flight // connections)
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(body)
        log_file = Path(tmp) / "log"
        options = [
            "-c", str(connections), "-m", str(streams), "-t", "1",
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            "-d", str(body_file), f"--log-file={log_file}", url,
        ]  # fmt: skip
        command = [*prefix, find_h2load(), *options]
        if warmup:
            subprocess.run([*command, "-n", str(warmup)], check=True, capture_output=True)
        command += ["-n", str(requests)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        latencies = tuple(int(line.split("\t")[2]) for line in log_file.read_text().splitlines() if line)
    finished = re.search(r"finished in ([\d.]+)(m?s)", output)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", output)
    data = re.search(r"traffic: .*?\((\d+)\) data", output)
    if not (finished and done and data):
        raise RuntimeError(f"unexpected h2load output:\n{output}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return LoadResult(in_flight, requests, int(done.group(1)), seconds, int(data.group(1)), latencies)
