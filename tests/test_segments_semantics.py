"""Each rule of the segment language (engine/segments/model.py), on a small hand-made dataset.

Every segment is written as YAML in a workspace, as a marketer would, and its members
are asserted exactly: from the compiled SQL (counted and streamed), and from the
reference evaluator, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _segment_data import (
    NOW,
    Rows,
    account_row,
    contact_row,
    enrollment_row,
    event_row,
    load_segments,
    members,
    message_row,
    owner_row,
)
from _services import PostgresServer
from sqlalchemy import Engine, create_engine, text

from engine.segments.compiler import SegmentCompiler, not_enrolled
from engine.storage import create_database_engine, upgrade

SEQUENCES = ("connecting-outreach", "nurture")
ALL = set(range(1, 13))


def _ago(days: float = 0, seconds: float = 0) -> datetime:
    return NOW - timedelta(days=days, seconds=seconds)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _dataset() -> Rows:
    """Five accounts, two owners, twelve contacts, their messages, events and enrollments."""
    rows = Rows()
    rows.owners = [
        owner_row(1, "anna@sales.test", "Anna Berg", "Account Executive"),
        owner_row(2, "bo@sales.test"),  # no name, no title
    ]
    rows.accounts = [
        account_row(1, "Nordlys AS", domain="nordlys.no", industry="Software", country="NO",
                    employees=250, attributes={"annual_revenue": 12_500_000.0,
                                               "tech_stack": "Salesforce, HubSpot"}),
        account_row(2, "Acme Inc", country="US", employees=50),
        account_row(3, "Fjord ApS", domain="fjord.dk", industry="Consulting", country="DK",
                    employees=100, attributes={"annual_revenue": 500_000.0}),
        account_row(4, "Big Corp", domain="big.se", industry="Retail", country="SE",
                    employees=500, attributes={"tech_stack": "SAP"}),
        account_row(5, "Unknown Ltd"),  # nothing but a name
    ]  # fmt: skip
    contact = contact_row
    rows.contacts = [
        contact(1, "prospecting", _ago(20), title="CTO", account_id=1, owner_id=1,
                created_at=_at("2026-01-10T09:00"),
                attributes={"decision_maker": True, "lead_score": 80,
                            "last_meeting": "2026-02-13",
                            "linkedin_url": "https://www.linkedin.com/in/one"}),
        contact(2, "research", _ago(14), title="HEAD OF SALES", account_id=1, owner_id=2,
                created_at=_at("2026-01-01T00:00"),
                attributes={"decision_maker": False, "lead_score": 40}),
        contact(3, "connecting", _ago(3), title="Økonomichef", account_id=3, owner_id=1,
                created_at=_ago(30), attributes={"lead_score": 55, "last_meeting": "2026-03-15"}),
        contact(4, "research", _ago(100), created_at=_at("2025-12-01T00:00")),  # no title...
        contact(5, "qualification", _ago(1), title="Head of Marketing", account_id=2,
                owner_id=1, created_at=_at("2026-03-01T00:00"),
                attributes={"decision_maker": True, "last_meeting": "2026-02-12"}),
        contact(6, "customer", _ago(60), title="VP Engineering", account_id=4,
                created_at=_at("2025-06-01T00:00"), attributes={"lead_score": 100}),
        contact(7, "connecting", _ago(15), title="ØKONOMICHEF", account_id=3, owner_id=2,
                created_at=_ago(30, seconds=1), attributes={"lead_score": 0}),
        contact(8, "lost", _ago(30), title="cto", account_id=5, owner_id=2,
                created_at=_at("2026-03-14T00:00"),
                attributes={"decision_maker": False, "last_meeting": "2026-01-31"}),
        contact(9, "research", _ago(7), title="Chief Technology Officer (CTO)", account_id=2,
                owner_id=1, created_at=_at("2026-02-01T00:00"),
                attributes={"linkedin_url": "https://LinkedIn.com/in/NINE"}),
        contact(10, "prospecting", _ago(2), title="Sales_Director 100%", account_id=4,
                owner_id=1, created_at=_at("2026-02-20T00:00"), attributes={"lead_score": 10}),
        contact(11, "prospecting", _ago(2), title="SalesXDirector 1000", owner_id=2,
                created_at=_at("2026-02-20T00:00")),
        contact(12, "research", NOW, title="İnsan Kaynakları Müdürü", account_id=1,  # noqa: RUF001
                created_at=NOW, attributes={"lead_score": -5, "last_meeting": "2026-03-16"}),
    ]  # fmt: skip
    rows.messages = [
        message_row(1, 1, "connecting-outreach", "intro"),
        message_row(2, 1, "connecting-outreach", "bump"),
        message_row(3, 6, "nurture", "welcome"),
        message_row(4, 2, "connecting-outreach", "intro"),
        message_row(5, 3, None, None),  # a one-off email, in no sequence
        message_row(6, 5, "nurture", "welcome"),
    ]
    event = event_row
    rows.events = [
        event(1, 1, "opened", _ago(1), message_id=1),
        event(2, 1, "opened", _ago(3), message_id=2),
        event(3, 1, "opened", _ago(20), message_id=1),
        event(4, 1, "clicked", _ago(2), message_id=2, link_tag="booking"),
        event(5, 1, "replied", _ago(40), message_id=1),
        event(6, 2, "opened", _ago(1), message_id=4, machine=True),  # a security scanner
        event(7, 2, "clicked", _ago(1), message_id=4, link_tag="booking", machine=True),
        event(8, 2, "opened", _ago(10), message_id=4),
        event(9, 3, "opened", _ago(14), message_id=5),  # exactly on the 14d boundary
        event(10, 3, "replied", _ago(5), message_id=5),
        event(11, 5, "clicked", _ago(5), link_tag="pricing"),  # no message
        event(12, 5, "bounced", _ago(30), message_id=6),
        event(13, 5, "opened", _ago(6), message_id=6),
        event(14, 6, "opened", _ago(2), message_id=3),
        event(15, 6, "clicked", _ago(2), message_id=3, link_tag="booking"),
        event(16, 7, "opened", _ago(14, seconds=1)),  # one second outside 14d
        event(17, 9, "opened", _ago(15)),
        event(18, None, "opened", _ago(1)),  # belongs to no contact
    ]
    rows.enrollments = [
        enrollment_row(1, 1, "connecting-outreach", "active"),
        enrollment_row(2, 2, "connecting-outreach", "completed"),
        enrollment_row(3, 2, "nurture", "paused"),
        enrollment_row(4, 3, "connecting-outreach", "exited"),
        enrollment_row(5, 5, "connecting-outreach", "failed"),
        enrollment_row(6, 5, "nurture", "active"),
        enrollment_row(7, 6, "nurture", "completed"),
        enrollment_row(8, 6, "connecting-outreach", "completed"),
        enrollment_row(9, 10, "connecting-outreach", "paused"),
    ]
    return rows


# Each case: segment name -> (its `where:` in YAML, the exact members).
Cases = dict[str, tuple[str, set[int]]]

MISSING_VALUES: Cases = {
    "title-eq": ("title: CTO", {1}),
    "title-ne": ("title: {ne: CTO}", ALL - {1, 4}),
    "title-not-eq": ("not: {title: CTO}", ALL - {1}),
    "title-not-in": ("title: {not_in: [CTO, cto]}", ALL - {1, 4, 8}),
    "title-exists": ("title: {exists: true}", ALL - {4}),
    "title-missing": ("title: {exists: false}", {4}),
    "title-not-exists": ("not: {title: {exists: true}}", {4}),
    "title-not-ne": ("not: {title: {ne: CTO}}", {1, 4}),
    "country-ne": ("account.country: {ne: 'NO'}", {3, 5, 6, 7, 9, 10}),
    "country-not-ne": ("not: {account.country: {ne: 'NO'}}", {1, 2, 4, 8, 11, 12}),
    "industry-missing": ("account.industry: {exists: false}", {4, 5, 8, 9, 11}),
    "owner-name-missing": ("owner.name: {exists: false}", {2, 4, 6, 7, 8, 11, 12}),
    "owner-email-ends": ("owner.email: {ends_with: '@sales.test'}", ALL - {4, 6, 12}),
    "decision-maker": ("attributes.decision_maker: true", {1, 5}),
    "decision-maker-ne": ("attributes.decision_maker: {ne: true}", {2, 8}),
    "decision-maker-not": ("not: {attributes.decision_maker: true}", ALL - {1, 5}),
    "decision-maker-missing": ("attributes.decision_maker: {exists: false}",
                               {3, 4, 6, 7, 9, 10, 11, 12}),
    "tech-stack-not-in": ("account.attributes.tech_stack: {not_in: [SAP]}", {1, 2, 12}),
    "tech-stack-missing": ("account.attributes.tech_stack: {exists: false}",
                           {3, 4, 5, 7, 8, 9, 11}),
}  # fmt: skip

STRINGS: Cases = {
    "head-of": ("title: {contains: head of}", {2, 5}),
    "oekonomi-exact": ("title: Økonomichef", {3}),
    "oekonomi-lower-exact": ("title: økonomichef", set()),
    # Ø is not an ASCII letter: it never matches ø, whatever the case of the rest
    "oekonomi-contains": ("title: {contains: Økonomichef}", {3, 7}),
    "oekonomi-contains-upper": ("title: {contains: ØKONOMICHEF}", {3, 7}),
    "oekonomi-contains-lower": ("title: {contains: økonomichef}", set()),
    "konomi": ("title: {contains: KONOMI}", {3, 7}),
    "starts-o-slash-lower": ("title: {starts_with: ø}", set()),
    "starts-o-slash": ("title: {starts_with: Ø}", {3, 7}),
    "dotted-i": ("title: {contains: İNSAN}", {12}),
    "dotted-i-ascii": ("title: {contains: insan}", set()),
    "u-umlaut-upper": ("title: {contains: MÜDÜRÜ}", set()),
    "u-umlaut": ("title: {ends_with: MüDüRü}", {12}),
    "cto-contains": ("title: {contains: cto}", {1, 8, 9, 10, 11}),  # also "Director"
    "cto-contains-any": ("title: {contains_any: [cto, head of]}", {1, 2, 5, 8, 9, 10, 11}),
    "not-cto-contains-any": (
        "not: {title: {contains_any: [cto, head of]}}",
        {3, 4, 6, 7, 12},
    ),
    "cto-contains-any-researching": (
        "all: [{stage: research}, {title: {contains_any: [cto, head of]}}]",
        {2, 9},
    ),
    "head-starts": ("title: {starts_with: HEAD}", {2, 5}),
    "cto-ends": ("title: {ends_with: (cto)}", {9}),
    # LIKE's wildcards are plain characters in a segment
    "underscore": ("title: {contains: s_d}", {10}),
    "percent": ("title: {ends_with: 100%}", {10}),
    "percent-middle": ("title: {contains: r 100%}", {10}),
    "title-in": ("title: {in: [CTO, cto]}", {1, 8}),
    "title-eq-lower": ("title: cto", {8}),
    "linkedin": ("attributes.linkedin_url: {contains: linkedin.com/in/nine}", {9}),
    "account-starts": ("account.name: {starts_with: nord}", {1, 2, 12}),
    "stage-in": ("stage: {in: [research, prospecting]}", {1, 2, 4, 9, 10, 11, 12}),
    "stage-ne": ("stage: {ne: research}", {1, 3, 5, 6, 7, 8, 10, 11}),
}

NUMBERS: Cases = {
    "employees-between": ("account.employees: {between: [100, 500]}", {1, 2, 3, 6, 7, 10, 12}),
    "employees-gt": ("account.employees: {gt: 100}", {1, 2, 6, 10, 12}),
    "employees-gte": ("account.employees: {gte: 100}", {1, 2, 3, 6, 7, 10, 12}),
    "employees-lt": ("account.employees: {lt: 100}", {5, 9}),
    "employees-lte": ("account.employees: {lte: 100}", {3, 5, 7, 9}),
    "employees-ne": ("account.employees: {ne: 250}", {3, 5, 6, 7, 9, 10}),
    "employees-in": ("account.employees: {in: [50, 500]}", {5, 6, 9, 10}),
    "employees-range": ("account.employees: {gte: 100, lt: 500}", {1, 2, 3, 7, 12}),
    "score-gte": ("attributes.lead_score: {gte: 55}", {1, 3, 6}),
    "score-gt-9": ("attributes.lead_score: {gt: 9}", {1, 2, 3, 6, 10}),  # numeric, not text
    "score-lt": ("attributes.lead_score: {lt: 10}", {7, 12}),
    "score-between": ("attributes.lead_score: {between: [0, 40]}", {2, 7, 10}),
    "score-not-in": ("attributes.lead_score: {not_in: [0, 100]}", {1, 2, 3, 10, 12}),
    "score-eq": ("attributes.lead_score: 100", {6}),
    "revenue-gt": ("account.attributes.annual_revenue: {gt: 1000000}", {1, 2, 12}),
    "revenue-between": ("account.attributes.annual_revenue: {between: [500000, 500000]}", {3, 7}),
    "revenue-lt": ("account.attributes.annual_revenue: {lt: 600000.5}", {3, 7}),
}

# now is 2026-03-15 12:00 UTC: "30d ago" is 2026-02-13 12:00, the day 2026-02-13
DATES: Cases = {
    "meeting-before-rel": ("attributes.last_meeting: {before: 30d ago}", {5, 8}),
    "meeting-after-rel": ("attributes.last_meeting: {after: 30d ago}", {3, 12}),
    "meeting-on-rel": ("attributes.last_meeting: 30d ago", {1}),
    "meeting-between": ("attributes.last_meeting: {between: [2026-01-31, 2026-02-13]}",
                        {1, 5, 8}),
    "meeting-between-rel": ("attributes.last_meeting: {between: [30d ago, 0d ago]}", {1, 3}),
    "meeting-before-abs": ("attributes.last_meeting: {before: 2026-03-15}", {1, 5, 8}),
    "meeting-after-abs": ("attributes.last_meeting: {after: 2026-03-15}", {12}),
    "meeting-on-abs": ("attributes.last_meeting: 2026-03-15", {3}),
    "meeting-ne-abs": ("attributes.last_meeting: {ne: 2026-03-15}", {1, 5, 8, 12}),
    # 23:30 at UTC-2 is 01:30 UTC on the 16th: the day compared is the UTC one, the 16th
    "meeting-after-offset": ("attributes.last_meeting: {after: '2026-03-15T23:30:00-02:00'}",
                             set()),
    "meeting-on-offset": ("attributes.last_meeting: '2026-03-15T23:30:00-02:00'", {12}),
    "created-before-rel": ("created_at: {before: 30d ago}", {1, 2, 4, 6, 7, 9}),
    "created-after-rel": ("created_at: {after: 30d ago}", {5, 8, 10, 11, 12}),
    "created-between": ("created_at: {between: [30d ago, 2026-03-01]}", {3, 5, 10, 11}),
    "created-after-abs": ("created_at: {after: 2026-03-14}", {12}),
    "created-before-offset": ("created_at: {before: '2026-01-01T01:00:00+01:00'}", {4, 6}),
    "created-missing": ("created_at: {exists: false}", set()),
    "stage-gt": ("time_in_stage: {gt: 14d}", {1, 4, 6, 7, 8}),
    "stage-gte": ("time_in_stage: {gte: 14d}", {1, 2, 4, 6, 7, 8}),
    "stage-gt-weeks": ("time_in_stage: {gt: 2w}", {1, 4, 6, 7, 8}),
    "stage-lt": ("time_in_stage: {lt: 2d}", {5, 12}),
    "stage-lte": ("time_in_stage: {lte: 2d}", {5, 10, 11, 12}),
    "stage-between": ("time_in_stage: {between: [2d, 14d]}", {2, 3, 9, 10, 11}),
    "stage-gt-hours": ("time_in_stage: {gt: 36h}", ALL - {5, 12}),
}  # fmt: skip

EVENTS: Cases = {
    "opened-ever": ("{event: opened}", {1, 2, 3, 5, 6, 7, 9}),
    "opened-14d": ("{event: opened, within: 14d}", {1, 2, 3, 5, 6}),
    "opened-14d-twice": ("{event: opened, within: 14d, count: {gte: 2}}", {1}),
    "opened-thrice": ("{event: opened, count: {eq: 3}}", {1}),
    "opened-2d": ("{event: opened, within: 2d}", {1, 6}),  # contact 2's is a machine open
    "opened-none": ("{event: opened, count: {lt: 1}}", {4, 8, 10, 11, 12}),
    "opened-14d-ne-1": ("{event: opened, within: 14d, count: {ne: 1}}",
                        {1, 4, 7, 8, 9, 10, 11, 12}),
    "opened-lte-1": ("{event: opened, count: {lte: 1}}", ALL - {1}),
    "opened-gt-1": ("{event: opened, count: {gt: 1}}", {1}),
    "clicked": ("{event: clicked}", {1, 5, 6}),
    "clicked-none": ("{event: clicked, count: {eq: 0}}", ALL - {1, 5, 6}),
    "clicked-booking": ("{event: clicked, link: booking}", {1, 6}),
    "clicked-pricing-7d": ("{event: clicked, link: pricing, within: 7d}", {5}),
    "opened-outreach": ("{event: opened, sequence: connecting-outreach}", {1, 2}),
    "opened-bump": ("{event: opened, sequence: connecting-outreach, step: bump}", {1}),
    "opened-nurture": ("{event: opened, sequence: nurture}", {5, 6}),
    "opened-intro-twice": ("{event: opened, sequence: connecting-outreach, step: intro, "
                           "count: {gte: 2}}", {1}),
    "opened-intro-7d": ("{event: opened, sequence: connecting-outreach, step: intro, "
                        "within: 7d}", {1}),
    "opened-intro-none": ("{event: opened, sequence: connecting-outreach, step: intro, "
                          "count: {eq: 0}}", ALL - {1, 2}),
    "not-replied-30d": ("not: {event: replied, within: 30d}", ALL - {3}),
    "replied-once": ("{event: replied, count: {between: [1, 1]}}", {1, 3}),
    "replied-0-to-1": ("{event: replied, count: {between: [0, 1]}}", ALL),
    "bounced-30d": ("{event: bounced, within: 30d}", {5}),
    "in-outreach": ("in_sequence: connecting-outreach", {1, 10}),
    "in-nurture": ("in_sequence: nurture", {2, 5}),
    "completed-outreach": ("completed_sequence: connecting-outreach", {2, 6}),
    "completed-nurture": ("completed_sequence: nurture", {6}),
    "not-in-outreach": ("not: {in_sequence: connecting-outreach}", ALL - {1, 10}),
}  # fmt: skip

LOGIC: Cases = {
    "all-empty": ("all: []", ALL),
    "any-empty": ("any: []", set()),
    "not-all-empty": ("not: {all: []}", set()),
    "not-any-empty": ("not: {any: []}", ALL),
    "ctos": ("title: {contains: cto}", {1, 8, 9, 10, 11}),
    "nordic": ("account.country: {in: [DK, SE, 'NO', FI]}", {1, 2, 3, 6, 7, 10, 12}),
    "nordic-ctos": ("all: [{segment: ctos}, {segment: nordic}]", {1, 10}),
    "not-ctos": ("not: {segment: ctos}", ALL - {1, 8, 9, 10, 11}),
    "ref-of-ref": ("any: [{segment: nordic-ctos}, {in_sequence: nurture}]", {1, 2, 5, 10}),
    "icp": (
        """
        all:
          - segment: nordic
          - any:
              - title: {contains_any: [CTO, "Head of", VP]}
              - attributes.decision_maker: true
          - not: {event: replied, within: 30d}
        """,
        {1, 2, 6, 10},
    ),
    "not-any-of-two": ("not: {any: [{title: CTO}, {title: {exists: false}}]}", ALL - {1, 4}),
}

GROUPS = {
    "missing-values": MISSING_VALUES,
    "strings": STRINGS,
    "numbers": NUMBERS,
    "dates-and-instants": DATES,
    "events-and-enrollments": EVENTS,
    "logic-and-references": LOGIC,
}


def _write_segments(root: Path, cases: Cases) -> None:
    folder = root / "segments"
    for old in folder.glob("*.yaml"):
        old.unlink()
    for name, (where, _expected) in cases.items():
        body = textwrap.indent(textwrap.dedent(where).strip(), "  ")
        (folder / f"{name}.yaml").write_text(f"name: {name}\nwhere:\n{body}\n", encoding="utf-8")


@pytest.fixture
def database(database_url: str) -> Iterator[Engine]:
    """The hand-made dataset in a fresh database (SQLite, then PostgreSQL)."""
    yield from _with_dataset(database_url)


@pytest.fixture
def folding_postgres(postgres_server: PostgresServer) -> Iterator[Engine]:
    """The dataset in a PostgreSQL database whose lower() folds every letter (ctype C.utf8,
    like most production databases'; the test cluster's C locale folds A-Z only)."""
    name = f"salescycle_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                                    "LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8'"))  # fmt: skip
    finally:
        admin.dispose()
    try:
        yield from _with_dataset(postgres_server.url_for(name))
    finally:
        postgres_server.drop_database(name)


def _with_dataset(url: str) -> Iterator[Engine]:
    engine = create_database_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            _dataset().insert(connection)
        yield engine
    finally:
        engine.dispose()


@pytest.mark.parametrize("group", list(GROUPS))
def test_each_rule_selects_exactly_the_expected_contacts(
    group: str, database: Engine, workspace: Path
) -> None:
    _assert_members(database, workspace, GROUPS[group])


def test_only_ascii_letters_fold_whatever_the_database_locale(
    folding_postgres: Engine, workspace: Path
) -> None:
    with folding_postgres.connect() as connection:  # the locale really folds Ø
        assert connection.scalar(text("SELECT lower('Ø')")) == "ø"
    _assert_members(folding_postgres, workspace, STRINGS)


def _assert_members(database: Engine, workspace: Path, cases: Cases) -> None:
    """Each case's segment has exactly its expected members, compiled and in the reference."""
    _write_segments(workspace, cases)
    segments, fields = load_segments(workspace, SEQUENCES)
    wrong = []
    with database.connect() as connection:
        for name, (where, expected) in cases.items():
            found = members(connection, segments, fields, name, batch_size=4)
            want = sorted(expected)
            if (found.counted, found.streamed, found.reference) != (len(want), want, want):
                wrong.append(
                    f"{name}: {' '.join(where.split())}\n    expected {want}\n"
                    f"    compiled {found.streamed} (count {found.counted})\n"
                    f"    reference {found.reference}"
                )
    assert not wrong, f"{len(wrong)} of {len(cases)} segments wrong:\n" + "\n".join(wrong)


def test_not_enrolled_leaves_out_every_contact_with_an_enrollment_in_the_sequence(
    database: Engine, workspace: Path
) -> None:
    # Given a segment of research and prospecting contacts, some enrolled (in any status)
    where = "stage: {in: [research, prospecting]}"
    _write_segments(workspace, {"early": (where, set())})
    segments, fields = load_segments(workspace, SEQUENCES)
    compiler = SegmentCompiler(segments, fields, NOW)
    rows = _dataset()
    early = {c["id"] for c in rows.contacts if c["stage"] in ("research", "prospecting")}
    enrolled = {e["contact_id"] for e in rows.enrollments if e["sequence"] == SEQUENCES[0]}
    assert early & enrolled and early - enrolled  # the dataset exercises both sides

    # When the set to enroll is asked for
    with database.connect() as connection:
        to_enroll = set(connection.scalars(not_enrolled(compiler, "early", SEQUENCES[0])))

    # Then it is the members without any enrollment in that sequence, in one query
    assert to_enroll == early - enrolled


def test_country_codes_match_whatever_case_they_are_written_in(
    database: Engine, workspace: Path
) -> None:
    # the import stores upper-case ISO codes; a marketer may write `no`
    rows = _dataset()
    norwegian = {a["id"] for a in rows.accounts if a["country"] == "NO"}
    expected = {c["id"] for c in rows.contacts if c["account_id"] in norwegian}
    assert expected
    cases: Cases = {"norway": ("account.country: no", expected)}
    _assert_members(database, workspace, cases)
