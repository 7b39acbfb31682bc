"""Send windows: days, hours, holidays and daylight-saving time, in the contact's own zone.

Real zoneinfo and holidays data; every function takes explicit instants, so no clock is
patched. Dates are in 2026: Copenhagen switches on 29 March and 25 October, New York on
8 March and 1 November.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.sequences.windows import (
    ALWAYS,
    END_OF_DAY,
    EVERY_DAY,
    MON_FRI,
    SendWindow,
    add_business_days,
    contact_timezone,
    is_holiday,
    is_open_day,
    jitter,
    next_open,
    parse_days,
    parse_hours,
    schedule,
)

CPH = ZoneInfo("Europe/Copenhagen")
NYC = ZoneInfo("America/New_York")
OFFICE = SendWindow(MON_FRI, time(9), time(17))  # 09:00-17:00 on weekdays
DAILY = SendWindow(EVERY_DAY, time(9), time(17))
NIGHT = SendWindow(EVERY_DAY, time(2, 30), time(5))  # opens inside the DST switch hours
NY_NIGHT = SendWindow(EVERY_DAY, time(1, 30), time(5))  # New York repeats 01:00-02:00


def at(tz: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A local wall-clock time (first occurrence), as the UTC instant the functions take."""
    return datetime(y, mo, d, h, mi, tzinfo=tz).astimezone(UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# parse_days / parse_hours


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("mon,wed,fri", {0, 2, 4}),
        ("sat-sun", {5, 6}),
        ("mon-sun", {0, 1, 2, 3, 4, 5, 6}),
        ("tue", {1}),
        (" Mon - Fri ", {0, 1, 2, 3, 4}),
        ("sun-thu", {6, 0, 1, 2, 3}),  # a range wraps around the week
        ("monday,fri-sat", {0, 4, 5}),
    ],
)
def test_parse_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize("text", ["mo", "mon-", "", "mon-wed-fri", "funday", "mon;tue"])
def test_parse_days_rejects_and_names_the_valid_days(text: str) -> None:
    with pytest.raises(ValueError, match="valid: mon, tue, wed, thu, fri, sat, sun"):
        parse_days(text)


def test_parse_days_names_the_unknown_day() -> None:
    with pytest.raises(ValueError, match=r"^unknown day 'mo'; valid: mon, tue"):
        parse_days("mo-fri")


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("08:30-16:30", (time(8, 30), time(16, 30))),
        ("9-17", (time(9), time(17))),
        ("9:00-17:00", (time(9), time(17))),
        (" 9 - 17:45 ", (time(9), time(17, 45))),
        ("0-24", (time(0), END_OF_DAY)),
        ("22:00-24:00", (time(22), END_OF_DAY)),
    ],
)
def test_parse_hours(text: str, hours: tuple[time, time]) -> None:
    assert parse_hours(text) == hours


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("16:30-08:30", "may not cross midnight"),
        ("9-9", "may not cross midnight"),
        ("25-26", "past 24:00"),
        ("9-24:30", "past 24:00"),
        ("9:60-10", "past 24:00"),
        ("nine-five", "e.g. 08:30-16:30 or 9-17"),
        ("9:5-10", "e.g. 08:30-16:30 or 9-17"),
        ("9", "e.g. 08:30-16:30 or 9-17"),
        ("", "e.g. 08:30-16:30 or 9-17"),
    ],
)
def test_parse_hours_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hours(text)


def test_window_checks_itself() -> None:
    with pytest.raises(ValueError, match="no overnight"):
        SendWindow(MON_FRI, time(17), time(9))
    with pytest.raises(ValueError, match="0 \\(Monday\\) to 6"):
        SendWindow(frozenset({7}), time(9), time(17))
    with pytest.raises(ValueError, match="jitter"):
        SendWindow(MON_FRI, time(9), time(17), jitter_minutes=-1)


# holidays


@pytest.mark.parametrize(
    "day", [date(2026, 6, 5), date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 31)]
)
def test_danish_holidays_include_grundlovsdag_and_the_eves(day: date) -> None:
    assert is_holiday(day, "DK")
    assert is_holiday(day, "dk")


def test_holidays_are_per_country() -> None:
    thanksgiving = date(2026, 11, 26)
    assert is_holiday(thanksgiving, "US")
    assert not is_holiday(thanksgiving, "DK")
    assert is_holiday(date(2026, 6, 19), "SE")  # Midsummer Eve: offices close
    assert not is_holiday(date(2026, 6, 19), "DK")
    assert not is_holiday(date(2026, 12, 23), "DK")


@pytest.mark.parametrize("country", [None, "", "XX", "Denmark"])
def test_unknown_country_has_no_holidays(country: str | None) -> None:
    assert not is_holiday(date(2026, 12, 25), country)


def test_is_open_day() -> None:
    assert is_open_day(OFFICE, date(2026, 12, 23), "DK")
    assert not is_open_day(OFFICE, date(2026, 12, 24), "DK")
    assert not is_open_day(OFFICE, date(2026, 12, 26), None)  # a Saturday
    no_holidays = SendWindow(MON_FRI, time(9), time(17), holidays=False)
    assert is_open_day(no_holidays, date(2026, 12, 24), "DK")


# next_open


def test_inside_the_window_returns_after_unchanged() -> None:
    after = at(CPH, 2026, 3, 3, 10, 15)
    assert next_open(OFFICE, after, CPH, "DK") == after
    opening = at(CPH, 2026, 3, 3, 9)
    assert next_open(OFFICE, opening, CPH, "DK") == opening
    last = at(CPH, 2026, 3, 3, 17) - timedelta(microseconds=1)
    assert next_open(OFFICE, last, CPH, "DK") == last


def test_before_opening_gives_todays_opening() -> None:
    assert next_open(OFFICE, at(CPH, 2026, 3, 3, 7), CPH, "DK") == utc(2026, 3, 3, 8)


@pytest.mark.parametrize("hour", [17, 20, 23])
def test_after_closing_gives_the_next_days_opening(hour: int) -> None:
    after = at(CPH, 2026, 3, 3, hour)  # closing is exclusive
    assert next_open(OFFICE, after, CPH, "DK") == utc(2026, 3, 4, 8)


def test_friday_evening_and_saturday_give_monday() -> None:
    assert date(2026, 3, 6).weekday() == 4
    monday = utc(2026, 3, 9, 8)
    assert next_open(OFFICE, at(CPH, 2026, 3, 6, 18), CPH, "DK") == monday
    assert next_open(OFFICE, at(CPH, 2026, 3, 7, 12), CPH, "DK") == monday


def test_danish_christmas_is_skipped() -> None:
    assert date(2026, 12, 24).weekday() == 3
    evening = at(CPH, 2026, 12, 23, 18)
    assert next_open(OFFICE, evening, CPH, "DK") == at(CPH, 2026, 12, 28, 9)
    no_holidays = SendWindow(MON_FRI, time(9), time(17), holidays=False)
    assert next_open(no_holidays, evening, CPH, "DK") == at(CPH, 2026, 12, 24, 9)
    assert next_open(OFFICE, evening, CPH, None) == at(CPH, 2026, 12, 24, 9)


def test_grundlovsdag_is_skipped() -> None:
    evening = at(CPH, 2026, 6, 4, 18)  # Thursday; 5 June is a Friday
    assert next_open(OFFICE, evening, CPH, "DK") == utc(2026, 6, 8, 7)
    assert next_open(OFFICE, evening, CPH, None) == utc(2026, 6, 5, 7)


def test_thanksgiving_is_skipped_for_the_us_only() -> None:
    evening = at(NYC, 2026, 11, 25, 18)
    assert next_open(OFFICE, evening, NYC, "US") == utc(2026, 11, 27, 14)
    assert next_open(OFFICE, evening, NYC, "DK") == utc(2026, 11, 26, 14)


def test_a_window_that_never_opens_is_an_error() -> None:
    never = SendWindow(frozenset(), time(9), time(17))
    with pytest.raises(ValueError, match="never opens within 366 days"):
        next_open(never, utc(2026, 3, 3), CPH, "DK")


def test_always_is_always_open() -> None:
    for after in (utc(2026, 3, 29, 1), at(CPH, 2026, 12, 24, 23, 59), utc(2026, 10, 25, 0, 30)):
        assert next_open(ALWAYS, after, CPH, "DK") == after
        assert schedule(ALWAYS, after, CPH, "DK", "key") == after


# daylight-saving time


@pytest.mark.parametrize(
    ("before", "after", "offset_before", "offset_after"),
    [
        (date(2026, 3, 28), date(2026, 3, 30), 8, 7),  # Copenhagen, spring forward
        (date(2026, 10, 24), date(2026, 10, 26), 7, 8),  # Copenhagen, fall back
    ],
)
def test_copenhagen_opens_at_nine_local_on_both_sides_of_a_switch(
    before: date, after: date, offset_before: int, offset_after: int
) -> None:
    evening = datetime.combine(before - timedelta(days=1), time(20), CPH)
    first = next_open(DAILY, evening, CPH, None)
    assert first == datetime.combine(before, time(offset_before), UTC)
    evening = datetime.combine(after - timedelta(days=1), time(20), CPH)
    second = next_open(DAILY, evening, CPH, None)
    assert second == datetime.combine(after, time(offset_after), UTC)
    assert first.astimezone(CPH).time() == second.astimezone(CPH).time() == time(9)


def test_the_switch_day_itself_opens_at_nine_local() -> None:
    assert next_open(DAILY, at(CPH, 2026, 3, 28, 20), CPH, None) == utc(2026, 3, 29, 7)
    assert next_open(DAILY, at(CPH, 2026, 10, 24, 20), CPH, None) == utc(2026, 10, 25, 8)


@pytest.mark.parametrize(
    ("sunday", "offset_before", "offset_after"),
    [(date(2026, 3, 8), 14, 13), (date(2026, 11, 1), 13, 14)],
)
def test_new_york_opens_at_nine_local_on_both_sides_of_a_switch(
    sunday: date, offset_before: int, offset_after: int
) -> None:
    friday, monday = sunday - timedelta(days=2), sunday + timedelta(days=1)
    thursday_evening = datetime.combine(friday - timedelta(days=1), time(20), NYC)
    assert next_open(OFFICE, thursday_evening, NYC, None) == datetime.combine(
        friday, time(offset_before), UTC
    )
    friday_evening = datetime.combine(friday, time(20), NYC)
    opening = next_open(OFFICE, friday_evening, NYC, None)
    assert opening == datetime.combine(monday, time(offset_after), UTC)
    assert opening.astimezone(NYC).time() == time(9)


def test_an_opening_in_the_spring_gap_moves_to_the_end_of_the_gap() -> None:
    # 02:30 does not exist in Copenhagen on 29 March: clocks jump from 02:00 to 03:00
    opening = next_open(NIGHT, at(CPH, 2026, 3, 28, 12), CPH, None)
    assert opening == utc(2026, 3, 29, 1)
    assert opening.astimezone(CPH).replace(tzinfo=None) == datetime(2026, 3, 29, 3)
    # New York jumps from 02:00 to 03:00 on 8 March
    opening = next_open(NIGHT, at(NYC, 2026, 3, 7, 12), NYC, None)
    assert opening == utc(2026, 3, 8, 7)
    assert opening.astimezone(NYC).replace(tzinfo=None) == datetime(2026, 3, 8, 3)
    # the next day is ordinary again
    assert next_open(NIGHT, at(CPH, 2026, 3, 29, 12), CPH, None) == utc(2026, 3, 30, 0, 30)


def test_an_opening_in_the_repeated_hour_is_its_first_occurrence() -> None:
    # Copenhagen reads 02:00-03:00 twice on 25 October: first at +02:00, then at +01:00
    opening = next_open(NIGHT, at(CPH, 2026, 10, 24, 12), CPH, None)
    assert opening == utc(2026, 10, 25, 0, 30)
    assert opening.astimezone(CPH).utcoffset() == timedelta(hours=2)
    # New York reads 01:00-02:00 twice on 1 November: first at -04:00, then at -05:00
    opening = next_open(NY_NIGHT, at(NYC, 2026, 10, 31, 12), NYC, None)
    assert opening == utc(2026, 11, 1, 5, 30)
    assert opening.astimezone(NYC).utcoffset() == timedelta(hours=-4)


def test_a_switch_inside_the_window_keeps_it_open_until_the_local_close() -> None:
    after = at(CPH, 2026, 3, 29, 1, 45)  # before the gap and the (nonexistent) 02:30 opening
    assert next_open(NIGHT, after, CPH, None) == utc(2026, 3, 29, 1)
    inside = utc(2026, 3, 29, 2, 30)  # 04:30 CEST, before the 05:00 close
    assert next_open(NIGHT, inside, CPH, None) == inside
    closed = utc(2026, 3, 29, 3)  # 05:00 CEST
    assert next_open(NIGHT, closed, CPH, None) == utc(2026, 3, 30, 0, 30)


# add_business_days


def test_business_days_skip_the_weekend() -> None:
    friday = at(CPH, 2026, 3, 6, 10)
    assert add_business_days(friday, 1, CPH, "DK") == at(CPH, 2026, 3, 9, 10)
    assert add_business_days(friday, 3, CPH, "DK") == at(CPH, 2026, 3, 11, 10)
    assert add_business_days(friday, 0, CPH, "DK") == friday


def test_business_days_skip_holidays() -> None:
    start = at(CPH, 2026, 12, 23, 10)
    assert add_business_days(start, 1, CPH, "DK") == at(CPH, 2026, 12, 28, 10)
    assert add_business_days(start, 1, CPH, None) == at(CPH, 2026, 12, 24, 10)
    assert add_business_days(at(NYC, 2026, 11, 25, 10), 1, NYC, "US") == at(NYC, 2026, 11, 27, 10)


def test_business_days_keep_the_local_time_across_dst() -> None:
    friday = at(CPH, 2026, 3, 27, 9)
    assert friday == utc(2026, 3, 27, 8)
    assert add_business_days(friday, 1, CPH, "DK") == utc(2026, 3, 30, 7)
    friday = at(NYC, 2026, 10, 30, 9)
    assert friday == utc(2026, 10, 30, 13)
    assert add_business_days(friday, 1, NYC, "US") == utc(2026, 11, 2, 14)


def test_business_days_on_other_weekdays() -> None:
    thursday = at(CPH, 2026, 3, 5, 9)
    sun_thu = parse_days("sun-thu")
    assert add_business_days(thursday, 1, CPH, None, sun_thu) == at(CPH, 2026, 3, 8, 9)
    with pytest.raises(ValueError, match="no open day"):
        add_business_days(thursday, 1, CPH, None, frozenset())
    with pytest.raises(ValueError, match="0 or more"):
        add_business_days(thursday, -1, CPH, None)


def test_a_business_day_landing_in_the_gap_moves_to_its_end() -> None:
    saturday = at(CPH, 2026, 3, 28, 2, 30)
    assert add_business_days(saturday, 1, CPH, None, EVERY_DAY) == utc(2026, 3, 29, 1)


# jitter and schedule


def test_jitter_is_deterministic_and_within_bounds() -> None:
    assert jitter("enrollment:1:intro", 7) == jitter("enrollment:1:intro", 7)
    delays = [jitter(f"enrollment:{i}:intro", 7) for i in range(2000)]
    assert all(timedelta(0) <= d < timedelta(minutes=7) for d in delays)
    assert all(d.microseconds == 0 for d in delays)
    assert {d // timedelta(minutes=1) for d in delays} == set(range(7))
    assert len(set(delays)) > 350  # of 420 possible seconds
    assert jitter("anything", 0) == timedelta(0)
    with pytest.raises(ValueError, match="0 or more"):
        jitter("anything", -1)


def test_schedule_stays_inside_the_window_and_spreads_keys() -> None:
    after = at(CPH, 2026, 3, 6, 18)  # Friday evening
    opening, closing = at(CPH, 2026, 3, 9, 9), at(CPH, 2026, 3, 9, 17)
    sends = [schedule(OFFICE, after, CPH, "DK", f"contact-{i}") for i in range(200)]
    assert all(opening <= send < closing for send in sends)
    assert all(send - opening < timedelta(minutes=7) for send in sends)
    assert len({send.minute for send in sends}) == 7
    assert len(set(sends)) > 100
    assert sends[0] == schedule(OFFICE, after, CPH, "DK", "contact-0")


def test_schedule_never_lands_at_or_after_the_close() -> None:
    late = at(CPH, 2026, 3, 9, 16, 58)
    closing = at(CPH, 2026, 3, 9, 17)
    sends = [schedule(OFFICE, late, CPH, "DK", f"k{i}") for i in range(200)]
    assert all(late <= send < closing for send in sends)
    assert max(sends) == closing - timedelta(seconds=1)
    last_second = closing - timedelta(microseconds=1)
    assert schedule(OFFICE, last_second, CPH, "DK", "k") == last_second
    short = SendWindow(MON_FRI, time(9), time(9, 5), jitter_minutes=30)
    sends = [schedule(short, late, CPH, "DK", f"k{i}") for i in range(200)]
    assert all(at(CPH, 2026, 3, 10, 9) <= s < at(CPH, 2026, 3, 10, 9, 5) for s in sends)


# contact_timezone


def test_contact_timezone_prefers_the_contacts_own() -> None:
    assert contact_timezone("America/Chicago", "DK", "Europe/Oslo", "UTC").key == "America/Chicago"


@pytest.mark.parametrize(
    ("country", "zone"),
    [("DK", "Europe/Copenhagen"), ("SE", "Europe/Stockholm"), ("se", "Europe/Stockholm")],
)
def test_contact_timezone_falls_back_to_the_account_country(country: str, zone: str) -> None:
    assert contact_timezone("Mars/Olympus_Mons", country, "Europe/Oslo", "UTC").key == zone


def test_contact_timezone_of_a_multi_zone_country_is_its_first_listed() -> None:
    zone = contact_timezone(None, "US", None, "UTC").key
    assert zone.startswith("America/")


@pytest.mark.parametrize("bad", [None, "", "America", "../etc/passwd", "europe/copenhagen"])
def test_contact_timezone_skips_invalid_names(bad: str | None) -> None:
    assert contact_timezone(bad, None, "Europe/Oslo", "UTC").key == "Europe/Oslo"
    assert contact_timezone(bad, "XX", bad, "Europe/Helsinki").key == "Europe/Helsinki"
    assert contact_timezone(bad, None, None, "Not/A_Zone").key == "UTC"


# naive datetimes


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 3, 10)
    with pytest.raises(ValueError, match="naive"):
        next_open(OFFICE, naive, CPH, "DK")
    with pytest.raises(ValueError, match="naive"):
        schedule(OFFICE, naive, CPH, "DK", "k")
    with pytest.raises(ValueError, match="naive"):
        add_business_days(naive, 1, CPH, "DK")


def test_results_are_in_utc() -> None:
    after = datetime(2026, 3, 3, 10, tzinfo=CPH)
    assert next_open(OFFICE, after, CPH, "DK").tzinfo is UTC
    assert add_business_days(after, 1, CPH, "DK").tzinfo is UTC
    assert schedule(OFFICE, after, CPH, "DK", "k").tzinfo is UTC
