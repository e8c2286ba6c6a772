"""The audience-sync command: exit statuses, the status table, rejects, the progress line."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from audience_sync.cli.main import build_parser
from audience_sync.report import Progress
from audience_sync.store import SyncStore
from decision.store.embedded import free_port
from inbound_common.cli import Exit
from tests.audience_sync.helpers import ROOT, cli, dump, seen_by_readers, spawn, write_lines, xdm_line


@pytest.fixture
def export(tmp_path: Path) -> Path:
    lines = [xdm_line(f"c-{i}", {"vip": "realized", "gold": "exited" if i % 2 else "realized"}) for i in range(99)]
    return write_lines(tmp_path / "export.json", [*lines, b'{"identityMap": {}}'])


def test_load_status_and_json(store: SyncStore, export: Path, capsys: Any, redis_url: str) -> None:
    url = ["--redis-url", redis_url]
    status, out, err = cli(capsys, "load", str(export), "--identity-namespace", "CRMID", *url)
    assert status == 0, err
    assert "export.json:100: identityMap.CRMID: missing" in err
    # One registry version: the switch (the pending records announced the new codes, version unchanged).
    assert "lines 100, bad 1 (1.00%), skipped 0 (other audiences); 99 profiles under 99 identities;" in out
    assert "snapshot applied: registry version 1" in out
    status, out, _ = cli(capsys, "status", *url)
    lines = out.splitlines()
    assert lines[0].split() == ["AUDIENCE", "CODE", "GEN", "MEMBERS", "SYNCED", "(UTC)", "AGE", "SOURCE", "LOADING"]
    assert [line.split()[:4] for line in lines[1:3]] == [["gold", "2", "1", "50"], ["vip", "1", "1", "99"]]
    assert lines[-1] == "registry version 1, 2 audience(s)"
    # Snapshots being loaded show up, a new audience's first one included.
    store.begin_snapshot("vip", now=time.time(), stale_after=300, source="t", owner="host:1")
    store.begin_snapshot("fresh", now=time.time() - 900, stale_after=300, source="t", owner="host:2")
    status, out, _ = cli(capsys, "status", *url)
    assert "gen 2: 0 written" in out
    assert next(line for line in out.splitlines() if line.startswith("fresh")).endswith(
        "gen 1: 0 written, dead (host:2): gc removes 3:1 fields and the record"
    )
    status, out, _ = cli(capsys, "status", "--json", *url)
    body = json.loads(out)
    assert body["version"] == 1  # "fresh" got a code, announced by its pending record alone
    assert {a["audience"]: a["members"] for a in body["audiences"]} == {"gold": 50, "vip": 99, "fresh": None}


def test_rejects_file_and_threshold_exit_status(
    store: SyncStore, export: Path, tmp_path: Path, capsys: Any, redis_url: str
) -> None:
    rejects = tmp_path / "rejects.txt"
    args = ["load", str(export), "--identity-namespace", "CRMID", "--max-bad-ratio", "0.5%", "--show-errors", "0"]
    status, _, err = cli(capsys, *args, "--rejects", str(rejects), "--redis-url", redis_url)
    assert status == 1
    assert "1 bad line(s) of 100 (1.00%) exceed the threshold (0.50%): snapshot not applied" in err
    assert (
        rejects.read_bytes()
        == b"# " + str(export).encode() + b':100: identityMap.CRMID: missing\n{"identityMap": {}}\n'
    )
    assert seen_by_readers(store) == {}


def test_dry_run_prints_what_would_change_and_writes_nothing(
    store: SyncStore, export: Path, capsys: Any, redis_url: str
) -> None:
    url = ["--redis-url", redis_url]
    before = dump(store)
    status, out, _ = cli(capsys, "load", str(export), "--identity-namespace", "CRMID", "--dry-run", *url)
    assert status == 0
    assert "dry run: nothing written" in out
    assert [line.split()[:5] for line in out.splitlines()[1:3]] == [
        ["vip", "0", "-", "99", "99"],
        ["gold", "0", "-", "50", "50"],
    ]
    assert dump(store) == before


def test_exit_statuses(tmp_path: Path, export: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDIENCE_SYNC_REDIS_URL", raising=False)
    monkeypatch.delenv("DECISION_REDIS_URL", raising=False)
    status, _, err = cli(capsys, "load", str(export))
    assert (status, "no Redis" in err) == (2, True)
    status, _, err = cli(capsys, "load", str(tmp_path / "missing.csv"), "--redis-url", "redis://127.0.0.1:1/0")
    assert (status, "no such file" in err) == (Exit.INVALID, True)  # input refused, as in decision validate
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("AUDIENCE_SYNC_REDIS_URL", nobody)
    status, _, err = cli(capsys, "load", str(export), "--identity-namespace", "CRMID")
    assert (status, "Redis unavailable" in err) == (3, True)
    with pytest.raises(SystemExit) as usage:
        build_parser().parse_args(["load", str(export), "--max-bad-ratio", "2"])
    assert usage.value.code == 2


def test_help_documents_the_exit_statuses() -> None:
    text = build_parser().format_help()
    for line in ("  0  ok", "  1  input refused", "  2  usage", "  3  Redis", "  4  conflict", "130  interrupted"):
        assert line in text
    assert "  6  " not in text  # decision profile's: audience-sync never ends with it


def test_progress_line_rate_and_eta() -> None:
    out = io.StringIO()
    now = [0.0]
    position = [0]
    progress = Progress("f.csv", total_bytes=1000, position=lambda: position[0], out=out, clock=lambda: now[0])
    now[0], position[0] = 10.0, 250
    progress.update(50_000)
    assert out.getvalue() == "f.csv: 50.0k rows, 5.0k rows/s, 0m10s, 25%, ETA 0m30s\n"


# -- --json, a closed stdout, --version -----------------------------------------------------
def test_load_json_is_one_object_with_counts_audiences_and_bad_lines(
    store: SyncStore, export: Path, capsys: Any, redis_url: str
) -> None:
    status, out, _ = cli(
        capsys, "load", str(export), "--identity-namespace", "CRMID", "--json", "--redis-url", redis_url
    )
    assert status == 0
    body = json.loads(out)  # one object, nothing else on stdout
    keys = ("command", "ok", "applied", "version", "lines", "bad_lines", "profiles", "identities", "memberships")
    assert {k: body[k] for k in keys} == {
        "command": "load", "ok": True, "applied": True, "version": 1, "lines": 100, "bad_lines": 1,
        "profiles": 99, "identities": 99, "memberships": 149,
    }  # fmt: skip
    assert body["errors"] == [f"{export}:100: identityMap.CRMID: missing"]
    assert {a["audience"]: (a["code"], a["members"], a["added"], a["exited"]) for a in body["audiences"]} == {
        "vip": (1, 99, 99, 0),
        "gold": (2, 50, 50, 49),
    }
    assert body["cleaned"] is None and body["refused"] is None


def test_load_json_of_a_refused_load_says_what_was_cleaned(
    store: SyncStore, export: Path, capsys: Any, redis_url: str
) -> None:
    args = ["load", str(export), "--identity-namespace", "CRMID", "--max-bad-ratio", "0.5%", "--batch-size", "10"]
    status, out, err = cli(capsys, *args, "--json", "--redis-url", redis_url)
    assert status == 1
    body = json.loads(out)
    assert (body["ok"], body["applied"], body["bad_lines"]) == (False, False, 1)
    assert body["refused"].startswith("1 bad line(s) of 100 (1.00%) exceed the threshold")
    assert body["cleaned"] == {
        "fields_removed": 149,
        "pending_removed": ["1:1", "2:1"],
        "not_found": [],
        "left_to_gc": [],
        "given_back": ["1:1", "2:1"],
        "codes_not_reused": {},
        "found_by_scan": False,
        "error": "",
    }
    assert "not applied; removed the 149 membership field(s) it had written" in err
    assert store.registry_state().pending == [] and list(store.scan_membership_keys(100)) == []


def test_apply_json(store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str) -> None:
    url = ["--redis-url", redis_url]
    changes = write_lines(tmp_path / "d.csv", ["profile_id,status", "p1,realized", "p2,realized", "p1,exited"])
    status, out, _ = cli(capsys, "apply", str(changes), "--audience", "vip", "--json", *url)
    assert status == 0
    body = json.loads(out)
    assert {k: body[k] for k in ("command", "ok", "lines", "bad_lines", "profiles", "identities", "changes")} == {
        "command": "apply",
        "ok": True,
        "lines": 3,
        "bad_lines": 0,
        "profiles": 0,
        "identities": 0,
        "changes": 3,
    }  # fmt: skip  (flat records: no XDM profiles)
    assert body["audiences"] == [
        {"audience": "vip", "added": 2, "removed": 1, "unchanged": 0, "stale": 0, "expired": 0}
    ]
    assert seen_by_readers(store) == {"p2": {"vip"}}
    bad = write_lines(tmp_path / "bad.csv", ["profile_id,status", "p3,maybe"])
    status, out, _ = cli(capsys, "apply", str(bad), "--audience", "vip", "--json", *url)
    assert status == 1
    assert json.loads(out)["refused"].startswith("1 bad line(s) of 1 (100.00%)")


def test_status_json(store: SyncStore, export: Path, capsys: Any, redis_url: str) -> None:
    cli(capsys, "load", str(export), "--identity-namespace", "CRMID", "--redis-url", redis_url)
    status, out, _ = cli(capsys, "status", "--json", "--redis-url", redis_url)
    body = json.loads(out)
    assert (status, body["command"], body["ok"], body["version"]) == (0, "status", True, 1)
    assert [(a["audience"], a["members"], a["loading"]) for a in body["audiences"]] == [
        ("gold", 50, []),
        ("vip", 99, []),
    ]


def test_a_closed_stdout_is_quiet(store: SyncStore, export: Path, redis_url: str) -> None:
    """`audience-sync status --json | head -c 10`: no traceback when the reader is gone."""
    store.begin_snapshot("vip", now=time.time(), stale_after=300, source="t", owner="h:1")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: every write fails with EPIPE
    process = spawn("status", "--json", stdout=write_end, redis_url=redis_url)
    os.close(write_end)
    _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (141, b"")
    shell = subprocess.run(
        f"{sys.executable} -m audience_sync.cli status --json --redis-url {redis_url} | head -c 10",
        shell=True, capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30,
    )  # fmt: skip
    assert (shell.stdout, shell.stderr) == (b'{"command"', b"")


def test_version(capsys: Any) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(r"audience-sync \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_apply_under_several_identity_namespaces(store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str) -> None:
    t1, t0 = "2026-11-02T10:00:00Z", "2026-11-01T10:00:00Z"
    changes = write_lines(
        tmp_path / "changes.json",
        [
            xdm_line("c-1", {"vip": {"status": "realized", "lastQualificationTime": t1}}),
            xdm_line("c-1", {"vip": {"status": "exited", "lastQualificationTime": t0}}),  # older: skipped
        ],
    )
    ids = ["--identity-namespace", "ECID", "--identity-namespace", "CRMID"]
    status, out, err = cli(capsys, "apply", str(changes), *ids, "--redis-url", redis_url)
    assert status == 0, err
    assert seen_by_readers(store) == {"c-1": {"vip"}, "ecid-c-1": {"vip"}}
    # Added under both identities; both exits are older: stale.
    assert out.splitlines()[1].split() == ["vip", "2", "0", "0", "2", "0"]
    assert "lines 2, bad 0 (0.00%); 2 profiles under 4 identities; 4 changes in" in out
    # Every id listed under a namespace: one person, two devices (two ECIDs).
    two_devices = json.loads(xdm_line("c-2", {"vip": {"status": "realized", "lastQualificationTime": t1}}))
    two_devices["identityMap"]["ECID"].append({"id": "ecid-c-2-tablet"})
    status, out, err = cli(
        capsys, "apply", str(write_lines(tmp_path / "c2.json", [json.dumps(two_devices)])), *ids, "--json",
        "--redis-url", redis_url,
    )  # fmt: skip
    body = json.loads(out)
    assert (status, body["profiles"], body["identities"], body["changes"]) == (0, 1, 3, 3)
    assert seen_by_readers(store) == {
        "c-1": {"vip"}, "ecid-c-1": {"vip"}, "c-2": {"vip"}, "ecid-c-2": {"vip"}, "ecid-c-2-tablet": {"vip"},
    }  # fmt: skip


def test_receive_on_a_busy_port_is_unavailable_as_in_decision_serve(capsys: Any, redis_url: str) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        status, _, err = cli(capsys, "receive", "--no-auth", "--host", "127.0.0.1", "--port", str(port),
                             "--redis-url", redis_url)  # fmt: skip
    assert status == Exit.UNAVAILABLE == 3, err  # decision serve's status for a port in use
    assert err == f"audience-sync receive: cannot listen on 127.0.0.1:{port}: the port is in use\n"
