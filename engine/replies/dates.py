"""The return date an out-of-office notice names, in English, Danish, Swedish or German.

Small patterns per form rather than a general date parser: notices write dates in a
few ways ("back on 14 December", "tilbage mandag den 7. december", "2026-12-14",
"åter den 3/1", "zurück am 07.12.2026"), and a general parser reads times, phone
numbers and version numbers as dates too. Numeric dates are day first, as in Europe.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

_MONTHS = {
    "january": 1, "januar": 1, "januari": 1, "jan": 1,
    "february": 2, "februar": 2, "februari": 2, "feb": 2,
    "march": 3, "marts": 3, "mars": 3, "märz": 3, "maerz": 3, "mar": 3, "mär": 3,
    "april": 4, "apr": 4,
    "may": 5, "maj": 5, "mai": 5,
    "june": 6, "juni": 6, "jun": 6,
    "july": 7, "juli": 7, "jul": 7,
    "august": 8, "augusti": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9,
    "october": 10, "oktober": 10, "oct": 10, "okt": 10,
    "november": 11, "nov": 11,
    "december": 12, "dezember": 12, "dec": 12, "dez": 12,
}  # fmt: skip
_WEEKDAYS = {
    "monday": 0, "mandag": 0, "måndag": 0, "montag": 0,
    "tuesday": 1, "tirsdag": 1, "tisdag": 1, "dienstag": 1,
    "wednesday": 2, "onsdag": 2, "mittwoch": 2,
    "thursday": 3, "torsdag": 3, "donnerstag": 3,
    "friday": 4, "fredag": 4, "freitag": 4,
    "saturday": 5, "lørdag": 5, "lördag": 5, "samstag": 5,
    "sunday": 6, "søndag": 6, "söndag": 6, "sonntag": 6,
}  # fmt: skip
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAY = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_FORMS = [
    re.compile(r"(?<![\d.])(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})(?!\d)"),
    re.compile(rf"(?<![\w.])(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\.?\s+(?:of\s+)?"
               rf"(?P<name>{_MONTH})\b{_YEAR}"),
    re.compile(rf"\b(?P<name>{_MONTH})\b\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?!\d){_YEAR}"),
    # 07.12.2026, 7.12., 3/1 (not a time: "kl. 9.30", "at 10.15")
    re.compile(r"(?<![\w.,/:])(?<!kl\. )(?<!kl )(?<!at )(?<!um )(?P<day>\d{1,2})[./]"
               r"(?P<month>\d{1,2})(?:[./](?P<year>\d{4}|\d{2}))?(?![\d/]|\.\d)"),
]  # fmt: skip
_RETURN = r"\b(?:back|return|returning|returns|tilbage|retur|åter|tillbaka|zurück|wieder)\b"
_RETURN_BEFORE = re.compile(rf"{_RETURN}[^\n]{{0,30}}$", re.IGNORECASE)
_RETURN_AFTER = re.compile(rf"^[^.!?\n]{{0,25}}?{_RETURN}", re.IGNORECASE)
_NEXT_WEEKDAY = re.compile(
    rf"\b(?:back|return\w*|tilbage|åter|tillbaka|zurück|wieder)\b\W+(?:(?:on|på|am|den)\s+)?"
    rf"(?P<weekday>{_WEEKDAY})\b",
    re.IGNORECASE,
)
_PAST_SLACK = dt.timedelta(days=60)  # "away since 1 December" may precede the notice


def return_date(text: str, sent_on: dt.date | None) -> dt.date | None:
    """The date the notice says its writer is back, or ``None`` when it names none.

    Dates without a year are the next such day after ``sent_on`` (within a small slack
    for dates just before it); without ``sent_on`` only dates with a year count. A date
    right after a return word ("back", "tilbage", "åter", "zurück") wins; else the
    latest date not before the notice.
    """
    found = [d for d in _dates(text, sent_on) if sent_on is None or d[2] >= sent_on]
    for start, end, day in found:
        before, after = text[max(0, start - 40) : start], text[end : end + 30]
        if _RETURN_BEFORE.search(before) or _RETURN_AFTER.search(after):
            return day
    if found:
        return max(day for _, _, day in found)
    return _weekday(text, sent_on)


def _dates(text: str, sent_on: dt.date | None) -> Iterator[tuple[int, int, dt.date]]:
    lowered = text.lower()
    for form in _FORMS:
        for match in form.finditer(lowered):
            parts = match.groupdict()
            month = _MONTHS[parts["name"]] if parts.get("name") else int(parts["month"])
            day = _day(int(parts["day"]), month, parts.get("year"), sent_on)
            if day is not None:
                yield match.start(), match.end(), day


def _day(day: int, month: int, year: str | None, sent_on: dt.date | None) -> dt.date | None:
    try:
        if year is not None:
            number = int(year)
            return dt.date(number + 2000 if number < 100 else number, month, day)
        if sent_on is None:
            return None
        candidate = dt.date(sent_on.year, month, day)
        if candidate < sent_on - _PAST_SLACK:
            candidate = dt.date(sent_on.year + 1, month, day)
        return candidate
    except ValueError:  # 31 February, month 34: not a date
        return None


def _weekday(text: str, sent_on: dt.date | None) -> dt.date | None:
    """ "back on Monday": the next such weekday after the notice."""
    match = _NEXT_WEEKDAY.search(text)
    if match is None or sent_on is None:
        return None
    ahead = (_WEEKDAYS[match.group("weekday").lower()] - sent_on.weekday() - 1) % 7 + 1
    return sent_on + dt.timedelta(days=ahead)
