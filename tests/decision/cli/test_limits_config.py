"""Request limits from a file and the command line: applied, and refused with their name when wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest

from decision.cli.limits_config import LimitsError, limits_from
from decision.settings import Limits
from tests.decision.cli.test_main import decision_command, wait_serving
from tests.decision.helpers import decide_request


def test_file_then_pairs_over_the_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "limits.toml"
    toml.write_text("max_placements = 4\nmax_context_keys = 8\n")
    limits = limits_from(str(toml), ["max_placements=2", " max_string_bytes = 100 "])
    assert (limits.max_placements, limits.max_context_keys, limits.max_string_bytes) == (2, 8, 100)
    assert limits.max_list_items == Limits().max_list_items
    as_json = tmp_path / "limits.json"
    as_json.write_text('{"max_list_items": 3}')
    assert limits_from(str(as_json), []).max_list_items == 3
    assert limits_from(None, []) == Limits()


@pytest.mark.parametrize(
    ("text", "pairs", "message"),
    [
        ("max_placement = 4\n", [], r"limits.toml: unknown limit 'max_placement' \(known: max_message_bytes, "),
        ("max_placements = 'four'\n", [], "limits.toml: max_placements: expected a positive integer, got 'four'"),
        ("max_placements = true\n", [], "max_placements: expected a positive integer, got True"),
        ("max_placements = 0\n", [], "max_placements: expected a positive integer, got 0"),
        ("max_message_bytes = 100\n", [], "max_message_bytes: at least 1024"),
        ("max_placements = [\n", [], r"limits.toml: Invalid value"),
        ("", ["max_placements"], "--limit 'max_placements': expected NAME=N"),
        ("", ["max_placements=x"], "--limit: max_placements: expected a positive integer, got 'x'"),
    ],
)
def test_wrong_limits_are_named(tmp_path: Path, text: str, pairs: list[str], message: str) -> None:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    with pytest.raises(LimitsError, match=message):
        limits_from(str(path), pairs)


def test_serve_applies_the_limits_and_refuses_bad_ones(tmp_path: Path, redis_url: str) -> None:
    from decision.store.embedded import free_port

    rules = tmp_path / "rules.yaml"
    rules.write_text("placements: [{id: a, channels: [web], fallback: f}, {id: b, channels: [web], fallback: f}]\n"
                     "offers: [{id: f, placements: [a, b]}]\n")  # fmt: skip
    limits = tmp_path / "limits.toml"
    limits.write_text("max_placements = 3\n")
    port = free_port()
    serve = ["serve", "--rules", str(rules), "--host", "127.0.0.1", "--port", str(port), "--redis-url", redis_url]
    serve += ["--drain", "0"]
    refused = subprocess.run(decision_command(*serve, "--limit", "max_placements=-1"), capture_output=True, text=True)
    assert refused.returncode == 2
    assert "decision serve: --limit: max_placements: expected a positive integer, got -1" in refused.stderr
    process = subprocess.Popen(decision_command(*serve, "--limits", str(limits), "--limit", "max_placements=1"))
    try:
        wait_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            from decision.v1 import decision_pb2_grpc

            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            assert stub.Decide(decide_request(placements=["a"]), timeout=5).propositions
            with pytest.raises(grpc.RpcError) as error:
                stub.Decide(decide_request(placements=["a", "b"]), timeout=5)
        assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details() == "placements: at most 1 placements per request"
    finally:
        process.terminate()
        process.wait(20)
