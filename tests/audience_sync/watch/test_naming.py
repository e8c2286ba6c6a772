"""The export time and series of a file, from the names AEP gives its exports."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from audience_sync.watch.naming import export_name

WHEN = datetime(2020, 4, 8, 6, 18, 4, tzinfo=UTC).timestamp()


def test_the_default_name_of_an_audience_export() -> None:
    name = export_name("Salesforce_Marketing_Cloud_segment12341e18-abcd-49c2-836d-123c88e76c39_20200408061804.csv")
    assert name.time == WHEN
    assert name.series == "Salesforce_Marketing_Cloud_segment12341e18-abcd-49c2-836d-123c88e76c39_*.csv"


def test_the_other_date_and_time_forms() -> None:
    assert export_name("amazon-s3_segment-name_20200408_061804.json").time == WHEN  # the API's template
    assert export_name("s3_segment-name_04082020_061804.csv.gz").time == WHEN  # the UI's "Date and time"
    assert export_name(f"s3_segment-name_{int(WHEN)}.parquet").time == WHEN  # a Unix timestamp
    assert export_name(f"aam_{int(WHEN) * 1000}_1.sync").time == WHEN  # milliseconds


def test_a_split_export_is_one_export() -> None:
    parts = [export_name(f"Dest_segmentA_20200408061804{suffix}.csv") for suffix in ("", "_2", "_3")]
    assert {p.series for p in parts} == {"Dest_segmentA_*.csv"} and {p.time for p in parts} == {WHEN}
    assert [p.part for p in parts] == [1, 2, 3]


def test_a_folder_per_export() -> None:
    """Dataset exports: ``<folder>/<dataset id>/exportTime=YYYYMMDDHHMM/part-...``; their files are its parts."""
    name = export_name("ds-1/exportTime=202004080618/part-00000-tid-4172098795867639101-c000.json")
    assert name.time == datetime(2020, 4, 8, 6, 18, tzinfo=UTC).timestamp()
    assert name.series == "ds-1/exportTime=*/"
    macro = export_name("campaigns/04082020_061804/export.csv")  # the %DATETIME% folder macro
    assert macro.time == WHEN and macro.series == "campaigns/*/"


def test_without_a_time_a_file_is_its_own_series() -> None:
    name = export_name("members/vip.csv")
    assert name.time is None and name.series == "members/vip.csv"
    assert export_name("segment99999999-ab.csv").time is None  # digits that are no date
    assert export_name("x_20201340123000.csv").time is None  # month 13


@given(
    # From 2001-09-09T01:46:40Z on, a Unix time has the 10 digits the names carry (found: 2001-01-01 has 9).
    st.datetimes(min_value=datetime(2001, 9, 10), max_value=datetime(2099, 12, 31)),
    st.sampled_from(["%Y%m%d%H%M%S", "%Y%m%d_%H%M%S", "%m%d%Y_%H%M%S", "unix"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
    st.sampled_from(["", "_2", "_17"]),
    st.sampled_from([".csv", ".json.gz", ".parquet"]),
)
def test_any_time_in_any_supported_form_is_read_back(
    moment: datetime, form: str, prefix: str, part: str, extension: str
) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    stamp = str(int(moment.timestamp())) if form == "unix" else moment.strftime(form)
    name = export_name(f"exports/{prefix}_segment{prefix}_{stamp}{part}{extension}")
    assert name.time == moment.timestamp()
    assert name.series == f"exports/{prefix}_segment{prefix}_*{extension}"
    assert name.part == (int(part[1:]) if part else 1)
