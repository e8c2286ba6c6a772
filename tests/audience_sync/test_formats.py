"""Parsers: records out of good lines, one located error per bad line, never an exception."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.formats import Format, InputOptions, parse
from audience_sync.formats.xdm import XdmOptions, parse_xdm
from audience_sync.records import Change, LineError, ParseStats
from audience_sync.sources import open_input
from tests.audience_sync.helpers import xdm_line

T0 = "2026-11-01T06:00:00Z"
EPOCH_T0 = datetime(2026, 11, 1, 6, tzinfo=UTC).timestamp()


def run(lines: list[bytes], fmt: Format, **options: object) -> tuple[list[Change], list[LineError], ParseStats]:
    stats = ParseStats()
    items = list(parse(lines, "in.x", fmt, InputOptions(**options), stats))  # type: ignore[arg-type]
    changes = [i for i in items if isinstance(i, Change)]
    errors = [i for i in items if isinstance(i, LineError)]
    return changes, errors, stats


def lines(text: str) -> list[bytes]:
    return [line.encode() + b"\n" for line in text.splitlines()]


# -- CSV ---------------------------------------------------------------------------------
def test_csv_with_an_audience_column_and_optional_columns() -> None:
    changes, errors, stats = run(
        lines(
            f"profile_id,audience_id,status,valid_until\np1,vip,realized,\np2,vip,exited,\np3,gold,existing,{T0}\n\n"
        ),
        Format.CSV,
    )
    assert errors == []
    assert [(c.profile_id, c.audience_id, c.member, c.expires_at, c.line) for c in changes] == [
        ("p1", "vip", True, None, 2),
        ("p2", "vip", False, None, 3),
        ("p3", "gold", True, int(EPOCH_T0), 4),
    ]
    assert (stats.lines, stats.bad) == (3, 0)


def test_csv_of_one_audience_with_a_configured_id_column() -> None:
    changes, errors, _ = run(lines("email,crm\na@x.org,1\nb@x.org,2\n"), Format.CSV, id_column="crm", audience="vip")
    assert errors == []
    assert [(c.profile_id, c.audience_id) for c in changes] == [("1", "vip"), ("2", "vip")]


def test_csv_bad_lines_are_located() -> None:
    text = (
        b"profile_id,audience_id,status,event_time\n"
        b"p1,vip\n"  # 2: wrong column count
        b",vip,realized,\n"  # 3: missing id
        b"p3,vip,maybe,\n"  # 4: unknown status
        b"p4,vip,realized,yesterday\n"  # 5: bad timestamp
        b"p\xff5,vip,realized,\n"  # 6: invalid UTF-8
        b"p6,vip,realized,\n"  # 7: good
    )
    changes, errors, stats = run(text.splitlines(keepends=True), Format.CSV)
    assert [c.profile_id for c in changes] == ["p6"]
    assert [str(e) for e in errors] == [
        "in.x:2: expected 4 columns, got 2",
        "in.x:3: profile_id: empty",
        "in.x:4: status: unknown status 'maybe' (expected one of realized, existing, exited, add, remove)",
        "in.x:5: event_time: bad timestamp 'yesterday' (expected ISO 8601 or epoch seconds)",
        "in.x:6: invalid UTF-8 at byte offset 1",
    ]
    assert (stats.lines, stats.bad) == (6, 5)


def test_csv_header_without_the_id_column_rejects_the_file() -> None:
    changes, errors, stats = run(lines("id,audience_id\np1,vip\n"), Format.CSV)
    assert changes == []
    assert [str(e) for e in errors] == ["in.x:1: header: no column 'profile_id' (columns: id, audience_id)"]
    assert stats.bad == stats.lines == 1


def test_csv_without_audience_needs_one() -> None:
    _, errors, _ = run(lines("profile_id\np1\n"), Format.CSV)
    assert "no column 'audience_id' and no --audience" in str(errors[0])


ids = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20).filter(
    lambda s: s.strip() == s and "\ufeff" not in s and not s.startswith("}")
)


@given(st.lists(st.tuples(ids, ids, st.booleans()), max_size=20))
def test_csv_round_trip(rows: list[tuple[str, str, bool]]) -> None:
    """Whatever ids a CSV writer quotes, the parser reads them back, one change per row."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["profile_id", "audience_id", "status"])
    for profile_id, audience_id, member in rows:
        writer.writerow([profile_id, audience_id, "realized" if member else "exited"])
    changes, errors, _ = run(out.getvalue().encode().splitlines(keepends=True), Format.CSV)
    assert errors == []
    assert [(c.profile_id, c.audience_id, c.member) for c in changes] == rows


# The line formats (Parquet rows come from pyarrow, not from bytes: tests/audience_sync/test_parquet.py).
@given(st.lists(st.binary(max_size=40), max_size=20), st.sampled_from([Format.CSV, Format.NDJSON, Format.XDM]))
def test_any_bytes_give_changes_or_located_errors(raw_lines: list[bytes], fmt: Format) -> None:
    """No input makes a parser raise; every counted line is either good or reported."""
    feed = [line.replace(b"\n", b" ") + b"\n" for line in raw_lines]
    changes, errors, stats = run(feed, fmt, audience="a")
    assert stats.bad == len(errors)
    assert all(isinstance(e.line, int) and 1 <= e.line <= len(feed) for e in errors)
    assert stats.lines <= len(feed)
    assert all(c.profile_id and c.audience_id for c in changes)


# -- NDJSON ----------------------------------------------------------------------------------
def test_ndjson_records_and_errors() -> None:
    text = [
        b'{"profile_id": "p1", "audience_id": "vip"}\n',
        b'{"profile_id": "p2", "audience_id": "vip", "status": "exited", "event_time": 1767225600}\n',
        b'{"profile_id": "p3"\n',
        b'{"audience_id": "vip"}\n',
        b"[1, 2]\n",
        b'{"profile_id": "p6", "audience_id": "vip", "valid_until": "soon"}\n',
        b'{"profile_id": "\xff", "audience_id": "vip"}\n',
    ]
    changes, errors, stats = run(text, Format.NDJSON)
    assert [(c.profile_id, c.member, c.event_time) for c in changes] == [
        ("p1", True, None),
        ("p2", False, 1767225600.0),
    ]
    messages = [str(e) for e in errors]
    assert messages[0].startswith("in.x:3: bad JSON: ")
    assert messages[1:] == [
        "in.x:4: profile_id: missing",
        "in.x:5: expected a JSON object, got list",
        "in.x:6: valid_until: bad timestamp 'soon' (expected ISO 8601 or epoch seconds)",
        "in.x:7: invalid UTF-8 at byte offset 16",
    ]
    assert (stats.lines, stats.bad) == (7, 5)


# -- XDM ---------------------------------------------------------------------------------------
def test_xdm_statuses_expiry_and_prefixes() -> None:
    plain = xdm_line(
        "c-1",
        {
            "a": {"status": "realized", "lastQualificationTime": T0},
            "b": "existing",
            "c": "exited",
            "d": {"status": "realized", "validUntil": "2030-01-01T00:00:00Z"},
        },
    )
    prefixed = orjson.dumps(
        {
            "xdm:identityMap": {"crmid": [{"xdm:id": "c-2", "xdm:primary": False}]},
            "xdm:segmentMembership": {"ups": {"a": {"xdm:status": "exited", "xdm:lastQualificationTime": T0}}},
        }
    )
    changes, errors, _ = run([plain, prefixed], Format.XDM, identity_namespaces=("CRMID",))
    assert errors == []
    assert [(c.profile_id, c.audience_id, c.member, c.expires_at, c.event_time) for c in changes] == [
        ("c-1", "a", True, None, EPOCH_T0),
        ("c-1", "b", True, None, None),
        ("c-1", "c", False, None, None),
        ("c-1", "d", True, int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()), None),
        ("c-2", "a", False, None, EPOCH_T0),
    ]


def test_xdm_primary_identity_and_segment_namespace() -> None:
    line = orjson.dumps(
        {
            "identityMap": {"Email": [{"id": "x@y.z"}], "ECID": [{"id": "e-9", "primary": True}]},
            "segmentMembership": {"ups": {"a": {"status": "realized"}}, "other": {"z": {"status": "realized"}}},
        }
    )
    changes, _, _ = run([line], Format.XDM)
    assert [(c.profile_id, c.audience_id) for c in changes] == [("e-9", "a")]
    changes, _, _ = run([line], Format.XDM, identity_namespaces=("email",), segment_namespace="other")
    assert [(c.profile_id, c.audience_id) for c in changes] == [("x@y.z", "z")]


def test_xdm_errors_name_the_field() -> None:
    bad = [
        orjson.dumps({"segmentMembership": {}}),
        orjson.dumps({"identityMap": {"ECID": [{"id": "e"}]}}),
        xdm_line("c-1", {"a": "qualified"}),
        xdm_line("c-1", {"a": {"status": "realized", "lastQualificationTime": "2026-13-01"}}),
        xdm_line("c-1", {"a": {"status": "realized", "validUntil": True}}),
        xdm_line("c\x01", {"a": "realized"}),
    ]
    stats = ParseStats()
    errors = [str(e) for e in parse_xdm(bad, "x.json", XdmOptions(("CRMID",)), stats) if isinstance(e, LineError)]
    assert errors == [
        "x.json:1: identityMap: missing",
        "x.json:2: identityMap.CRMID: missing",
        "x.json:3: segmentMembership.ups.a.status: unknown status 'qualified' "
        "(expected one of realized, existing, exited, add, remove)",
        "x.json:4: segmentMembership.ups.a.lastQualificationTime: bad timestamp '2026-13-01' "
        "(expected ISO 8601 or epoch seconds)",
        "x.json:5: segmentMembership.ups.a.validUntil: expected a timestamp, got bool",
        "x.json:6: identityMap.CRMID[0].id: contains a control character",
    ]


def test_xdm_every_id_listed_under_each_chosen_namespace() -> None:
    """AEP lists several ids per namespace (one person, two devices: two ECIDs): each gets the memberships."""
    body = {
        "identityMap": {
            "ECID": [{"id": "e-1"}, {"id": "e-2", "primary": True}],
            "Email": [{"id": "ada@example.com"}],
            "CRMID": [{"id": "c-1"}],
        },
        "segmentMembership": {"ups": {"a": {"status": "realized"}, "b": {"status": "exited"}, "c": None}},
    }
    changes, errors, stats = run([orjson.dumps(body)], Format.XDM, identity_namespaces=("ecid", "email"))
    assert errors == []
    assert [(c.profile_id, c.audience_id, c.member) for c in changes] == [
        ("e-1", "a", True),
        ("e-2", "a", True),
        ("ada@example.com", "a", True),
        ("e-1", "b", False),
        ("e-2", "b", False),
        ("ada@example.com", "b", False),
    ]  # "c": null is no audience (struct columns write one for every audience a profile is not in)
    assert (stats.lines, stats.profiles, stats.identities) == (1, 1, 3)
    # No namespace chosen: the identity flagged primary, only.
    changes, _, stats = run([orjson.dumps(body)], Format.XDM)
    assert [c.profile_id for c in changes] == ["e-2", "e-2"] and stats.identities == 1
    # Any bad id refuses the profile, located by its index.
    body["identityMap"] = {"ECID": [{"id": "e-1"}, {"id": ""}]}
    bad_id = orjson.dumps(body)
    body["identityMap"] = {"ECID": [{"id": "e-1"}, "e-2"]}
    not_object = orjson.dumps(body)
    body["identityMap"] = {"ECID": {"id": "e-1"}}
    not_list = orjson.dumps(body)
    _, errors, stats = run([bad_id, not_object, not_list], Format.XDM, identity_namespaces=("ECID",))
    assert [str(e) for e in errors] == [
        "in.x:1: identityMap.ECID[1].id: empty",
        "in.x:2: identityMap.ECID[1]: expected an object",
        "in.x:3: identityMap.ECID: expected a list of identities",
    ]
    assert (stats.profiles, stats.identities) == (0, 0)


namespaces = st.sampled_from(["ECID", "Email", "CRMID"])


@given(
    st.dictionaries(namespaces, st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=3), min_size=1),
    st.lists(namespaces, min_size=1, max_size=3, unique=True),
)
def test_xdm_property_every_id_of_the_chosen_namespaces(listed: dict[str, list[str]], chosen: list[str]) -> None:
    """The ids a profile is written under are exactly those listed under the chosen namespaces, each once, in
    order; a profile with none of them is one bad line."""
    body = {
        "identityMap": {ns: [{"id": i} for i in listed_ids] for ns, listed_ids in listed.items()},
        "segmentMembership": {"ups": {"vip": {"status": "realized"}}},
    }
    changes, errors, stats = run([orjson.dumps(body)], Format.XDM, identity_namespaces=tuple(chosen))
    expected = list(dict.fromkeys(i for ns in chosen for i in listed.get(ns, [])))
    assert [c.profile_id for c in changes] == expected
    assert stats.identities == len(expected) and len(errors) == (0 if expected else 1)


statuses = st.sampled_from(["realized", "existing", "exited"])


@given(st.dictionaries(ids, statuses, max_size=8), ids, st.booleans())
def test_xdm_property_one_change_per_segment(segments: dict[str, str], profile_id: str, prefixed: bool) -> None:
    """Every segment of a profile becomes one change; member exactly for realized/existing; prefixes change nothing."""
    body: dict[str, object] = {
        "identityMap": {"CRMID": [{"id": profile_id}]},
        "segmentMembership": {"ups": {a: {"status": s, "lastQualificationTime": T0} for a, s in segments.items()}},
    }
    if prefixed:
        body = {"xdm:" + k: v for k, v in body.items()}
    changes, errors, _ = run([orjson.dumps(body)], Format.XDM, identity_namespaces=("CRMID",))
    assert errors == []
    assert {(c.audience_id, c.member) for c in changes} == {(a, s != "exited") for a, s in segments.items()}
    assert all(c.profile_id == profile_id and c.event_time == EPOCH_T0 for c in changes)


# -- files -------------------------------------------------------------------------------------
@pytest.mark.parametrize("compressed", [False, True])
def test_files_plain_or_gzip_and_format_detection(tmp_path: Path, compressed: bool) -> None:
    body = xdm_line("c-1", {"a": "realized"}) + b"\n"
    path = tmp_path / ("export.json.gz" if compressed else "export.json")
    path.write_bytes(gzip.compress(body) if compressed else body)
    with open_input(str(path)) as opened:
        assert opened.format is Format.XDM
        assert list(opened.lines) == [body]
        assert opened.position() == path.stat().st_size


def test_xdm_several_namespaces_one_change_per_identity() -> None:
    both = xdm_line("c-1", {"a": "realized", "b": "exited"})  # ECID ecid-c-1 (primary) and CRMID c-1
    web_only = orjson.dumps({"identityMap": {"ECID": [{"id": "e-2"}]}, "segmentMembership": {"ups": {"a": {}}}})
    same_id = orjson.dumps(
        {"identityMap": {"ECID": [{"id": "x"}], "crmid": [{"id": "x"}]}, "segmentMembership": {"ups": {"a": {}}}}
    )
    neither = orjson.dumps({"identityMap": {"Email": [{"id": "m@x"}]}, "segmentMembership": {"ups": {}}})
    stats = ParseStats()
    items = list(parse_xdm([both, web_only, same_id, neither], "x.json", XdmOptions(("ECID", "CRMID")), stats))
    assert [(i.profile_id, i.audience_id, i.member) for i in items if isinstance(i, Change)] == [
        ("ecid-c-1", "a", True),
        ("c-1", "a", True),
        ("ecid-c-1", "b", False),
        ("c-1", "b", False),
    ]
    # A profile without a status is refused; one known under neither namespace too; one id in two namespaces is one.
    assert [str(i) for i in items if isinstance(i, LineError)] == [
        "x.json:2: segmentMembership.ups.a.status: missing",
        "x.json:3: segmentMembership.ups.a.status: missing",
        "x.json:4: identityMap.ECID/CRMID: missing",
    ]
    ok = orjson.dumps({"identityMap": {"ECID": [{"id": "x"}], "CRMID": [{"id": "x"}]},
                       "segmentMembership": {"ups": {"a": {"status": "realized"}}}})  # fmt: skip
    changes, _, _ = run([ok], Format.XDM, identity_namespaces=("ECID", "CRMID"))
    assert [c.profile_id for c in changes] == ["x"]
