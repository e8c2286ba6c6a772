"""``--attribute SOURCE[:TYPE][=NAME]``: which CSV columns, NDJSON fields and XDM paths become attributes."""

from __future__ import annotations

import pytest

from audience_sync.attribute_mapping import AttributeSource, from_object, from_row
from audience_sync.attributes import AttributeChange
from audience_sync.records import InvalidField


def test_specs() -> None:
    assert AttributeSource.parse("tier") == AttributeSource("tier", "string", "tier")
    assert AttributeSource.parse("ltv:number") == AttributeSource("ltv", "number", "ltv")
    assert AttributeSource.parse("person.name.firstName=first_name") == AttributeSource(
        "person.name.firstName", "string", "first_name"
    )
    for spec, reason in [
        ("person.name.firstName", "is not an attribute name; add =NAME"),
        ("ltv:money", "unknown type 'money'"),
        (":number", "no source"),
    ]:
        with pytest.raises(ValueError, match=reason):
            AttributeSource.parse(spec)


def test_csv_cells() -> None:
    sources = [AttributeSource.parse(s) for s in ("tier", "ltv:number", "vip:bool", "seen:timestamp", "stores:list")]
    row = {"tier": "gold", "ltv": "12.5", "vip": "yes", "seen": "2026-11-02T10:00:00Z", "stores": "lyon|paris"}
    assert from_row(sources, "p1", row, 5.0) == [
        AttributeChange("p1", "tier", "string", "gold", 5.0),
        AttributeChange("p1", "ltv", "number", 12.5, 5.0),
        AttributeChange("p1", "vip", "bool", True, 5.0),
        AttributeChange("p1", "seen", "timestamp", 1793613600.0, 5.0),
        AttributeChange("p1", "stores", "list", ["lyon", "paris"], 5.0),
    ]
    assert from_row(sources, "p1", {"tier": "", "ltv": ""}, 5.0) == []  # empty cells write nothing
    with pytest.raises(InvalidField, match="ltv: expected a number, got 'lots'"):
        from_row(sources, "p1", {"ltv": "lots"}, 5.0)


def test_json_fields_and_xdm_paths() -> None:
    sources = [AttributeSource.parse(s) for s in ("person.name.firstName=first_name", "ltv:number", "tier")]
    profile = {"xdm:person": {"xdm:name": {"firstName": "Ana"}}, "ltv": 3, "tier": None}
    assert from_object(sources, "p1", profile, 5.0) == [
        AttributeChange("p1", "first_name", "string", "Ana", 5.0),
        AttributeChange("p1", "ltv", "number", 3.0, 5.0),
        AttributeChange("p1", "tier", "string", None, 5.0),  # null: removed
    ]
    with pytest.raises(InvalidField, match="ltv: expected a number, got str"):
        from_object(sources, "p1", {"ltv": "3"}, 5.0)
