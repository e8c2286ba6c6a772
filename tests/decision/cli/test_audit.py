"""``decision rules publish|list|diff`` as an operator runs them: who published what, and what changed."""

from __future__ import annotations

import getpass
from pathlib import Path

import orjson

from tests.decision.cli.test_ops import clean_redis, run  # noqa: F401 - clean_redis is a fixture

V1 = """
version: v1
placements: [{id: banner, channels: [web], fallback: fb}, {id: side, channels: [web], fallback: fb}]
offers:
  - {id: fb, placements: [banner, side]}
  - {id: sale, placements: [banner], priority: 5}
  - {id: old, placements: [banner]}
"""
V2 = (
    V1.replace("version: v1", "version: v2")
    .replace("priority: 5}", "priority: 6, content: {title: x}}")
    .replace("{id: old, placements: [banner]}", "{id: new, placements: [side]}")
    .replace("{id: side, channels: [web], fallback: fb}", "{id: side, channels: [web], max_items: 2, fallback: fb}")
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_publish_records_who_and_what_list_and_diff_show_it(clean_redis: str, tmp_path: Path) -> None:  # noqa: F811
    url = clean_redis
    v1, v2 = write(tmp_path, "v1.yaml", V1), write(tmp_path, "v2.yaml", V2)
    first = run("rules", "publish", v1, "--redis-url", url, "--author", "alice")
    assert first.returncode == 0, first.stderr
    assert "by alice: first publication" in first.stdout
    second = run("rules", "publish", v2, "--redis-url", url)  # default author: the OS user
    assert second.returncode == 0, second.stderr
    assert f"by {getpass.getuser()}: offers +1 -1 ~1, placements +0 -0 ~1 (vs v1)" in second.stdout

    listed = run("rules", "list", "--redis-url", url)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].split()[-3:] == ["author", "source", "changes"]
    assert rows[1].split()[4:] == ["alice", v1, "first", "publication"]
    assert rows[2].startswith("*") and rows[2].split()[5:7] == [getpass.getuser(), v2]
    assert rows[2].endswith("offers +1 -1 ~1, placements +0 -0 ~1 (vs v1)")
    as_json = orjson.loads(run("rules", "list", "--redis-url", url, "--json").stdout)["versions"]
    assert [v["author"] for v in as_json] == ["alice", getpass.getuser()]
    assert as_json[0]["changes"] is None and as_json[1]["previous"] == "v1"
    assert as_json[1]["changes"]["offers"] == {
        "added": ["new"],
        "removed": ["old"],
        "changed": {"sale": ["priority", "content"]},
    }

    by_version = run("rules", "diff", "v1", "v2", "--redis-url", url)
    assert by_version.returncode == 0, by_version.stderr
    assert by_version.stdout.splitlines() == [
        "v1 -> v2: offers +1 -1 ~1, placements +0 -0 ~1",
        "  + offer new",
        "  - offer old",
        "  ~ offer sale: priority, content",
        "  ~ placement side: max_items",
    ]
    mixed = run("rules", "diff", v2, "v1", "--redis-url", url, "--json")  # a file and a published version
    body = orjson.loads(mixed.stdout)
    assert (body["old"], body["new"]) == ("v2", "v1") and body["changes"]["offers"]["added"] == ["old"]
    same = run("rules", "diff", v1, v1)  # files need no Redis
    assert same.returncode == 0 and same.stdout == "v1 -> v1: no changes\n"
    unknown = run("rules", "diff", "v1", "v9", "--redis-url", url)
    assert unknown.returncode == 2 and "v9: neither a file nor a published version" in unknown.stderr
    no_redis = run("rules", "diff", v1, "v2")
    assert no_redis.returncode == 2 and "give --redis-url" in no_redis.stderr
