"""``decision simulate --compare OLD NEW``: the winners a new ruleset changes, on a sample with a known answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from decision.cli import main as cli
from tests.decision.cli.test_simulate import PROFILES, RULES, write_sample

# "shadowed" (audiences a and b: every 10th profile) now outranks "hi" (b); the cart placement is untouched.
NEW = RULES.replace("version: sim-1", "version: sim-2").replace(
    "{id: shadowed, placements: [banner], priority: 10,", "{id: shadowed, placements: [banner], priority: 95,"
)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path)


@pytest.fixture
def rulesets(write_rules: Callable[..., Path]) -> tuple[str, str]:
    return str(write_rules(RULES, "old.yaml")), str(write_rules(NEW, "new.yaml"))


def test_the_changed_winners_are_counted_with_examples(
    rulesets: tuple[str, str], sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["simulate", "--compare", *rulesets, "--profiles", str(sample), "--json"])
    assert status == 0
    result = orjson.loads(capsys.readouterr().out)
    assert (result["old"], result["new"], result["profiles"]) == ("sim-1", "sim-2", PROFILES)
    by_placement = {p["placement"]: p for p in result["placements"]}
    assert (by_placement["banner"]["decisions"], by_placement["banner"]["changed"]) == (PROFILES, PROFILES // 10)
    assert by_placement["cart"]["changed"] == 0
    assert by_placement["banner"]["moves"] == [
        {"old": ["hi"], "new": ["shadowed"], "count": PROFILES // 10, "examples": ["p0", "p10", "p20"]}
    ]
    assert result["share"] == pytest.approx(0.05)  # 1,000 of 20,000 decisions


@pytest.mark.parametrize(("ratio", "status"), [("0.04", 1), ("0.05", 0)])
def test_fail_on_change_for_ci(
    rulesets: tuple[str, str], sample: Path, capsys: pytest.CaptureFixture[str], ratio: str, status: int
) -> None:
    assert (
        cli.main(["simulate", "--compare", *rulesets, "--profiles", str(sample), "--fail-on-change", ratio]) == status
    )
    shown = capsys.readouterr()
    assert "hi -> shadowed: 1000 (e.g. p0, p10, p20)" in shown.out
    assert "changed: 1000 of 20000 decisions (5.0%)" in shown.out
    assert ("above --fail-on-change" in shown.err) == (status == 1)


def test_compare_needs_two_rulesets_and_no_positional(
    rulesets: tuple[str, str], sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["simulate", rulesets[0], "--compare", *rulesets, "--profiles", str(sample)]) == 2
    assert cli.main(["simulate", rulesets[0], "--profiles", str(sample), "--fail-on-change", "0.1"]) == 2
    assert "--compare OLD NEW" in capsys.readouterr().err
