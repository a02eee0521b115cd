"""Windows → shifts: overlap weights, overnight shifts, DST, off-shift; shift config validation."""

from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import ConfigError, Location, Shift, loads_config
from monitor.shifts.attribute import attribute, occurrences
from monitor.shifts.localtime import epoch, local_to_utc, zone

NY = "America/New_York"
THREE = [Shift("morning", 6 * 60, 14 * 60), Shift("evening", 14 * 60, 22 * 60), Shift("overnight", 22 * 60, 6 * 60)]


def at(tz: str, *args) -> int:
    return epoch(local_to_utc(datetime(*args), zone(tz)))


def attribute_one(location: Location, start: int, end: int, first=date(2026, 1, 1), last=date(2026, 12, 31)):
    occ = occurrences(location, first, last)
    result = attribute(occ, np.array([start]), np.array([end]))
    return {
        (occ.shift_name(int(s)), (occ.first_day.toordinal() + int(d))): round(float(w), 6)
        for s, d, w in zip(result.shift, result.day, result.weight, strict=True)
    }


def day(*args) -> int:
    return date(*args).toordinal()


def test_point_goes_whole_to_the_containing_shift():
    loc = Location("dt", NY, shifts=THREE)
    point = at(NY, 2026, 6, 10, 9, 0)
    assert attribute_one(loc, point, point) == {("morning", day(2026, 6, 10)): 1.0}
    boundary = at(NY, 2026, 6, 10, 14, 0)  # start inclusive, end exclusive
    assert attribute_one(loc, boundary, boundary) == {("evening", day(2026, 6, 10)): 1.0}


def test_overnight_shift_belongs_to_its_start_date():
    loc = Location("dt", NY, shifts=THREE)
    point = at(NY, 2026, 6, 10, 3, 0)  # Wednesday 03:00 is Tuesday's overnight shift
    assert attribute_one(loc, point, point) == {("overnight", day(2026, 6, 9)): 1.0}


def test_window_split_by_overlap():
    loc = Location("dt", NY, shifts=THREE)
    start, end = at(NY, 2026, 6, 10, 12, 0), at(NY, 2026, 6, 10, 18, 0)
    weights = attribute_one(loc, start, end)
    assert weights[("morning", day(2026, 6, 10))] == pytest.approx(1 / 3, abs=1e-6)
    assert weights[("evening", day(2026, 6, 10))] == pytest.approx(2 / 3, abs=1e-6)


def test_outside_every_shift_is_off_shift():
    loc = Location("dt", NY, shifts=THREE[:2])  # 06:00-22:00 only
    start, end = at(NY, 2026, 6, 10, 20, 0), at(NY, 2026, 6, 10, 23, 0)
    weights = attribute_one(loc, start, end)
    assert weights[("evening", day(2026, 6, 10))] == pytest.approx(2 / 3, abs=1e-6)
    assert weights[("off-shift", day(2026, 6, 10))] == pytest.approx(1 / 3, abs=1e-6)


def test_weekday_limited_shift():
    loc = Location("dt", NY, shifts=[Shift("weekday", 6 * 60, 14 * 60, (0, 1, 2, 3, 4))])
    saturday = at(NY, 2026, 6, 13, 9, 0)
    assert attribute_one(loc, saturday, saturday) == {("off-shift", day(2026, 6, 13)): 1.0}


def test_overnight_shift_across_spring_forward_and_fall_back():
    loc = Location("dt", NY, shifts=THREE)
    spring = occurrences(loc, date(2026, 3, 7), date(2026, 3, 7))
    fall = occurrences(loc, date(2026, 10, 31), date(2026, 10, 31))
    night = lambda occ, d: next(  # noqa: E731
        (e - s) / 3600
        for s, e, k, dd in zip(occ.start, occ.end, occ.shift, occ.day, strict=True)
        if k == 2 and occ.first_day.toordinal() + dd == d
    )
    assert night(spring, day(2026, 3, 7)) == 7  # Saturday 22:00 EST to Sunday 06:00 EDT
    assert night(fall, day(2026, 10, 31)) == 9  # Saturday 22:00 EDT to Sunday 06:00 EST
    # 01:30 on the fall-back night happens twice; both instants are the Saturday overnight shift
    first, second = at(NY, 2026, 11, 1, 1, 30), at(NY, 2026, 11, 1, 1, 30) + 3600
    for point in (first, second):
        assert attribute_one(loc, point, point) == {("overnight", day(2026, 10, 31)): 1.0}


def test_shift_boundary_in_the_gap_and_the_repeat():
    loc = Location("x", NY, shifts=[Shift("early", 90, 150), Shift("late", 150, 600)])  # 01:30-02:30-10:00
    occ = occurrences(loc, date(2026, 3, 8), date(2026, 3, 8))
    rows = {
        (int(k), occ.first_day.toordinal() + int(d)): (s, e)
        for s, e, k, d in zip(occ.start, occ.end, occ.shift, occ.day, strict=True)
    }
    # 02:30 does not exist on 8 March: "early" ends and "late" starts at the jump, 03:00 EDT = 07:00Z
    assert rows[(0, day(2026, 3, 8))][1] == rows[(1, day(2026, 3, 8))][0] == epoch(datetime(2026, 3, 8, 7, tzinfo=UTC))
    occ = occurrences(loc, date(2026, 11, 1), date(2026, 11, 1))
    rows = {
        (int(k), occ.first_day.toordinal() + int(d)): (s, e)
        for s, e, k, d in zip(occ.start, occ.end, occ.shift, occ.day, strict=True)
    }
    # 01:30 happens twice on 1 November: the shift starts at the first one (EDT, 05:30Z) and lasts 2 h
    assert rows[(0, day(2026, 11, 1))] == (
        epoch(datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
        epoch(datetime(2026, 11, 1, 7, 30, tzinfo=UTC)),
    )


def test_europe_london_overnight_shift_length():
    loc = Location("ldn", "Europe/London", shifts=[Shift("night", 22 * 60, 6 * 60)])
    occ = occurrences(loc, date(2026, 3, 28), date(2026, 3, 28))
    lengths = {
        occ.first_day.toordinal() + int(d): (e - s) / 3600 for s, e, d in zip(occ.start, occ.end, occ.day, strict=True)
    }
    assert lengths[day(2026, 3, 28)] == 7


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=epoch(datetime(2026, 1, 2, tzinfo=UTC)), max_value=epoch(datetime(2026, 12, 28, tzinfo=UTC))),
    st.integers(min_value=0, max_value=3 * 86400),
)
def test_weights_of_a_window_sum_to_one(start, length):
    loc = Location("dt", NY, shifts=[THREE[0], Shift("lunch-gap-evening", 15 * 60, 21 * 60, (0, 2, 4))])
    occ = occurrences(loc, date(2026, 1, 1), date(2026, 12, 31))
    result = attribute(occ, np.array([start]), np.array([start + length]))
    assert result.weight.sum() == pytest.approx(1.0)
    assert (result.weight > 0).all()


SHIFT_CONFIG = """
[[locations]]
id = "dt"
timezone = "America/New_York"
[[locations.shifts]]
name = "morning"
start = "06:00"
end = "14:00"
[[locations.shifts]]
name = "{name}"
start = "{start}"
end = "{end}"
{extra}
"""

BAD_SHIFTS = [
    ({"start": "25:00"}, "locations[0].shifts[1].start", "expected \"HH:MM\", got '25:00'"),
    ({"end": "6pm"}, "locations[0].shifts[1].end", 'expected "HH:MM"'),
    ({"name": "morning"}, "locations[0].shifts[1].name", "duplicate shift name 'morning'"),
    ({"start": "12:00"}, "locations[0].shifts[1].start", "overlaps shift 'morning'"),
    ({"start": "22:00", "end": "07:00"}, "locations[0].shifts[1].start", "overlaps shift 'morning'"),
    ({"extra": 'weekdays = ["mon", "funday"]'}, "locations[0].shifts[1].weekdays[1]", "expected one of mon"),
    ({"extra": "weekdays = []"}, "locations[0].shifts[1].weekdays", "at least one weekday"),
    ({"extra": 'lenght = "1h"'}, "locations[0].shifts[1].lenght", "unknown key"),
    ({"name": "off-shift"}, "locations[0].shifts[1].name", "reserved"),
]


@pytest.mark.parametrize(("changes", "key", "fragment"), BAD_SHIFTS, ids=[b[1] + b[2][:10] for b in BAD_SHIFTS])
def test_bad_shift_config_names_the_key(changes, key, fragment):
    values = {"name": "evening", "start": "14:00", "end": "22:00", "extra": ""} | changes
    with pytest.raises(ConfigError) as info:
        loads_config(SHIFT_CONFIG.format(**values))
    assert info.value.key == key
    assert fragment in str(info.value)


def test_good_shift_config():
    config = loads_config(
        SHIFT_CONFIG.format(name="night", start="22:00", end="06:00", extra='weekdays = ["fri", "Saturday"]')
        + '\n[shifts]\nincident_window = "2h"\nincident_min_complaints = 4\n'
        + '\n[[sources]]\nname = "r"\ntype = "reddit"\nsearch = ["x"]\nvisit_lag = "30m"\n'
    )
    [loc] = config.locations
    assert [s.name for s in loc.shifts] == ["morning", "night"]
    assert loc.shifts[1].overnight and loc.shifts[1].weekdays == (4, 5)
    assert config.shifts.incident_window.total_seconds() == 7200 and config.shifts.incident_min_complaints == 4
    assert config.sources[0].visit_lag.total_seconds() == 1800


def test_location_sources_must_exist():
    with pytest.raises(ConfigError) as info:
        loads_config('[[locations]]\nid = "dt"\ntimezone = "UTC"\nsources = ["nope"]\n')
    assert info.value.key == "locations[0].sources[0]"
