"""The profile pages show numbers for people: dates as dates, a date's spread as a duration, and
3–4 significant digits instead of float noise such as 69.30000000000001."""

import re

import pytest

from data.services import data_version_from_file
from studio.templatetags.studio_tags import duration, for_people

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "semantic_type", "shown"),
    [
        (69.30000000000001, "numeric", "69.3"),
        (0.15000000000000002, "numeric", "0.15"),
        (3.14159265, "numeric", "3.142"),
        (1234567.891, "numeric", "1,234,568"),
        (1234567, "integer", "1,234,567"),
        (-0.000123456, "numeric", "-0.0001235"),
        ("2024-03-01", "datetime", "2024-03-01"),
        ("2024-03-01T00:00:00", "datetime", "2024-03-01"),
        ("2024-03-01T13:30:00.734512", "datetime", "2024-03-01 13:30:01"),
        ("2024-03-01T13:30:00+00:00", "datetime", "2024-03-01 13:30 UTC"),
        (None, "numeric", ""),
    ],
)
def test_statistics_are_formatted_for_people(value, semantic_type, shown):
    assert for_people(value, semantic_type) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (36_000_000.0, "1.14 years"),
        (9_000_000.0, "104 days"),
        (5_400.0, "1.5 hours"),
        (90.0, "1.5 min"),
        (0.0042, "4.2 ms"),
    ],
)
def test_durations_are_formatted_for_people(seconds, shown):
    assert duration(seconds) == shown


def test_the_profile_and_column_table_show_dates_as_dates_and_no_float_noise(client, owner, workspace, tmp_path):
    source = tmp_path / "visits.csv"
    lines = ["visited,ratio,amount"]
    lines += [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d},{(i % 7) / 10 + 69.2},{1_000_000 + i * 7}" for i in range(200)]
    source.write_text("\n".join(lines) + "\n")
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="visits")
    stats = {c["name"]: c for c in version.profile["column_profiles"]}
    assert stats["visited"]["std"] > 1_000_000  # stored in seconds; shown as a duration

    client.force_login(owner)
    base = f"/w/{workspace.pk}/data/{version.asset_id}/v/{version.version}/"
    profile = client.get(base + "?tab=profile").content.decode()
    summaries = re.findall(r'<p class="small muted">(.*?)</p>', profile, re.S)
    visited = next(s for s in summaries if "distinct" in s and "days" in s)
    assert re.search(r"mean 2024-\d\d-\d\d( \d\d:\d\d(:\d\d)?)? · std \d+(\.\d)? days", visited), visited
    assert re.search(r"median 2024-\d\d-\d\d", visited), visited
    for summary in summaries:
        assert not re.search(r"\d\.\d{5,}", summary), summary  # no float noise
        assert "T00:00:00" not in summary

    overview = client.get(base).content.decode()
    table = overview[overview.index('data-testid="column-table"') :]
    table = table[: table.index("</table>")]
    assert not re.search(r"\d\.\d{5,}", table), table
    assert "1,000,000" in table and "1,001,393" in table
