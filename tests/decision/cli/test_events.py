"""``decision events`` as a user runs it: a real server process, a real Redis, the real command."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import orjson

from decision.store.embedded import EmbeddedRedis, free_port
from tests.decision.cli.test_main import Server, decision_command, rules_file, serve  # noqa: F401 - fixtures


def events(server_target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        decision_command("events", "--target", server_target, *args),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def tracking_token(server: Server, profile: str = "p1") -> str:
    response = server.decide(profile_id=profile)
    return str(response.propositions[0].items[0].tracking_token)  # type: ignore[attr-defined]


def test_one_event_from_flags_recorded_then_duplicate_then_rejected(serve: object) -> None:  # noqa: F811
    server = serve()  # type: ignore[operator]
    token = tracking_token(server)
    flags = ["--profile", "p1", "--type", "click", "--token", token, "--event-id", "e-1"]
    first = events(server.target, *flags)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["RECORDED", "e-1"]
    again = events(server.target, *flags)
    assert again.returncode == 0 and again.stdout.split() == ["DUPLICATE", "e-1"]
    bad = events(server.target, "--profile", "p1", "--type", "dismiss", "--token", "nope", "--event-id", "e-2")
    assert bad.returncode == 1
    assert bad.stdout.startswith("REJECTED   e-2  events[0].tracking_token: ")
    # (the click counted its token's impression: another decision's token for this one)
    generated = events(
        server.target, "--profile", "p1", "--type", "impression", "--token", tracking_token(server), "--json"
    )
    assert generated.returncode == 0, generated.stderr
    body = orjson.loads(generated.stdout)
    [result] = body["results"]
    assert result["outcome"] == "recorded" and len(result["event_id"]) == 32 and body["unsent"] == []


def test_an_ndjson_file_is_sent_in_batches_of_at_most_500(serve: object, tmp_path: Path) -> None:  # noqa: F811
    server = serve()  # type: ignore[operator]
    token = tracking_token(server)
    now = datetime.now(UTC).isoformat()
    lines = [  # a token counts each type once: 600 custom types
        {"event_id": f"n{i}", "profile_id": "p1", "type": "custom", "custom_type": f"t{i}", "tracking_token": token,
         "timestamp": now}
        for i in range(600)
    ]  # fmt: skip
    lines[550] = {"eventId": "bad", "profileId": "p1", "type": "EVENT_TYPE_CUSTOM", "trackingToken": token}
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n\n")
    sent = events(server.target, "--file", str(path), "--json")
    assert sent.returncode == 1, sent.stderr  # one rejected: a custom event without its name
    results = orjson.loads(sent.stdout)["results"]
    assert [r["event_id"] for r in results] == [line.get("event_id", "bad") for line in lines]
    assert [r["outcome"] for r in results].count("recorded") == 599
    assert results[550]["reason"].startswith("events[50].custom_type: ")  # the second batch's 51st
    again = events(server.target, "--file", str(path))
    assert again.stdout.splitlines()[0].split() == ["DUPLICATE", "n0"]
    assert again.stdout.splitlines()[599].split() == ["DUPLICATE", "n599"]


def test_a_bad_file_or_flags_send_nothing(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"  # nothing listens: a usage error must come before any call
    path = tmp_path / "events.ndjson"
    path.write_text('{"profile_id": "p1", "type": "click", "tracking_token": "t"}\n{"profile_id": "p1", "typ": 1}\n')
    refused = events(target, "--file", str(path))
    assert refused.returncode == 1  # the input refused, as a ruleset decision validate refuses
    assert f"{path}:2: typ: unknown field" in refused.stderr
    assert events(target, "--file", str(tmp_path / "missing.ndjson")).returncode == 1
    path.write_text('{"profile_id": "p1", "type": "view", "tracking_token": "t"}\n')
    assert f"{path}:1: type: unknown event type 'view'" in events(target, "--file", str(path)).stderr
    missing = events(target, "--type", "click")
    assert missing.returncode == 2 and "--profile, --token required" in missing.stderr
    naive = events(target, "--profile", "p", "--type", "click", "--token", "t", "--at", "2026-01-01T10:00:00")
    assert naive.returncode == 2 and "needs a time zone" in naive.stderr


def test_unavailable_server_or_redis_exits_3(serve: object) -> None:  # noqa: F811
    nobody = events(f"127.0.0.1:{free_port()}", "--profile", "p1", "--type", "click", "--token", "t")
    assert nobody.returncode == 3 and "UNAVAILABLE" in nobody.stderr
    with EmbeddedRedis() as redis_server:
        server = serve(redis=redis_server.url)  # type: ignore[operator]
        token = tracking_token(server)
        redis_server.stop()
        down = events(server.target, "--profile", "p1", "--type", "click", "--token", token, "--deadline-ms", "5000")
    assert down.returncode == 3, down.stdout + down.stderr
    assert "UNAVAILABLE" in down.stderr and "1 event(s) not sent or not recorded" in down.stderr
    [(outcome, event_id)] = [line.split() for line in down.stdout.splitlines()]
    assert outcome == "UNSENT" and len(event_id) == 32  # the generated id, to retry with
