"""``salescycle report``: every figure checked against a small hand-built history.

Five contacts walk the starter pipeline with stays of known length (days):

    c1 Ann  research 2, prospecting 3, connecting 10, qualification (since day 15)
    c2 Ann  research 4, prospecting 2, connecting 2, lost (day 8)
    c3 Bob  research 6, prospecting 4, connecting 20, qualification (since day 30)
    c4 Bob  research 8 (from day 1), prospecting (since day 9)
    c5 Ann  research (since day 2)

Sequence ``outreach``: step ``intro`` in variants A and B (20 messages each), step ``bump``
(10 messages); sequence ``nurture``: one ``welcome`` to c5. Day 0 is 2026-03-02 (UTC).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _support import explain, invoke
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, Float, create_engine, insert, literal, select

from engine.reports import (
    Deliverability,
    Report,
    ReportFilter,
    ReportFilterError,
    build_report,
    sends_per_variant,
    two_proportion_p,
)
from engine.reports._sql import ACCURACY, duration_bucket, histogram_quantiles
from engine.stages import Pipeline, load_pipeline
from engine.stages.history import rebuild_stage_intervals
from engine.storage import create_database_engine, upgrade
from engine.storage.schema import (
    contacts,
    enrollments,
    events,
    messages,
    owners,
    stage_history,
    suppressions,
)
from engine.tracking.outcomes import fill_exit_stages, refresh_outcomes
from engine.workspace import Workspace

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
NOW = datetime(2026, 4, 2, tzinfo=UTC)
DAY = 86400.0
HISTORIES = {  # contact: (owner, [(day, stage), ...])
    1: (1, [(0, "research"), (2, "prospecting"), (5, "connecting"), (15, "qualification")]),
    2: (1, [(0, "research"), (4, "prospecting"), (6, "connecting"), (8, "lost")]),
    3: (2, [(0, "research"), (6, "prospecting"), (10, "connecting"), (30, "qualification")]),
    4: (2, [(1, "research"), (9, "prospecting")]),
    5: (1, [(2, "research")]),
}


def within(expected: Any) -> Any:
    """Percentiles come from a histogram: within ``ACCURACY`` of the exact value."""
    return pytest.approx(expected, rel=ACCURACY)


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


# --------------------------------------------------------------------------
# The history


def _insert_people(connection: Connection) -> None:
    connection.execute(insert(owners), [
        {"id": 1, "email": "ann@example.test", "name": "Ann Archer",
         "created_at": DAY0, "updated_at": DAY0},
        {"id": 2, "email": "bob@example.test", "name": "Bob Baker",
         "created_at": DAY0, "updated_at": DAY0},
    ])  # fmt: skip
    for contact, (owner, steps) in HISTORIES.items():
        last_day, last_stage = steps[-1]
        connection.execute(insert(contacts).values(
            id=contact, email=f"c{contact}@example.test", owner_id=owner, stage=last_stage,
            stage_entered_at=day(last_day), attributes={}, created_at=DAY0,
            updated_at=DAY0))  # fmt: skip
        previous = None
        for at, stage in steps:
            connection.execute(insert(stage_history).values(
                contact_id=contact, from_stage=previous, to_stage=stage, cause="crm",
                changed_at=day(at)))  # fmt: skip
            previous = stage
        sequence = "nurture" if contact == 5 else "outreach"
        connection.execute(insert(enrollments).values(
            contact_id=contact, sequence=sequence, status="active", enrolled_at=DAY0,
            updated_at=DAY0))  # fmt: skip


def _insert_messages(connection: Connection) -> None:
    rows = []
    for i in range(51):
        if i < 40:  # intro: A on day 1, B on day 2
            step, variant, sent, contact = "intro", "AB"[i // 20], day(1 + i // 20), i % 5 + 1
        elif i < 50:
            step, variant, sent, contact = "bump", None, day(4), (i - 40) % 5 + 1
        else:
            step, variant, sent, contact = "welcome", None, day(5), 5
        rows.append({
            "id": i + 1, "idempotency_key": f"k{i}", "contact_id": contact,
            "sequence": "nurture" if step == "welcome" else "outreach", "step_id": step,
            "variant": variant, "template": step, "to_email": f"c{contact}@example.test",
            "from_email": "ann@example.test", "subject": "hi", "rfc_message_id": f"<{i}@x>",
            "status": "sent", "sent_at": sent, "created_at": sent, "updated_at": sent,
        })  # fmt: skip
    connection.execute(insert(messages), rows)


def _event(message: int, kind: str, at: datetime, **extra: Any) -> dict[str, Any]:
    contact = 5 if message == 51 else ((message - 1) % 5 + 1)
    row = {"provider": "test", "kind": kind, "message_id": message, "contact_id": contact,
           "occurred_at": at, "machine": False, "reject_reason": None, "detail": {},
           "created_at": at}  # fmt: skip
    return {**row, **extra}


def _insert_events(connection: Connection) -> None:
    a, b, bump = range(1, 21), range(21, 41), range(41, 51)
    rows = [_event(m, "delivered", day(1)) for m in a]
    rows += [_event(m, "delivered", day(2)) for m in b]
    rows += [_event(m, "delivered", day(4)) for m in bump if m not in (43, 45)]
    rows += [_event(51, "delivered", day(5))]
    rows += [_event(m, "opened", day(3)) for m in range(1, 11)]  # A: 10 people
    rows += [_event(1, "opened", day(3.5)), _event(1, "opened", day(4))]  # opened again
    rows += [_event(m, "opened", day(1), machine=True) for m in (1, 11, 12, 13)]  # bots
    rows += [_event(m, "clicked", day(3)) for m in (1, 2)]
    rows += [_event(3, "clicked", day(1), machine=True)]  # a link scanner
    rows += [_event(m, "replied", day(3), detail={"intent": "not_interested"}) for m in (4, 5)]
    rows += [_event(m, "opened", day(3)) for m in range(21, 33)]  # B: 12 people
    rows += [_event(m, "clicked", day(3)) for m in (21, 22, 23)]
    rows += [_event(m, "replied", day(3), detail={"intent": "interested"}) for m in range(21, 26)]
    rows += [_event(21, "replied", day(3.2), detail={"intent": "interested"})]  # once more
    rows += [_event(m, "replied", day(4), detail={"intent": "objection"}) for m in (26, 27)]
    rows += [_event(28, "replied", day(4))]  # no intent found
    rows += [_event(31, "auto_replied", day(3))]
    rows += [
        _event(45, "bounced", day(4.1), reject_reason="hard_bounce"),  # c5
        _event(43, "bounced", day(4.1), reject_reason="soft_bounce"),  # c3: not an exit
        _event(44, "unsubscribed", day(12)),  # c4
        _event(41, "complained", day(20)),  # c1
    ]
    connection.execute(insert(events), rows)
    connection.execute(insert(suppressions), [
        {"email": "c4@example.test", "reason": "unsubscribed", "source": "test",
         "created_at": day(12)},
        {"email": "c1@example.test", "reason": "complained", "source": "test",
         "created_at": day(20)},
    ])  # fmt: skip


@pytest.fixture
def database(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    upgrade(engine)
    with engine.begin() as connection:
        _insert_people(connection)
        _insert_messages(connection)
        _insert_events(connection)
        # rows inserted by hand: derive the report columns the engine keeps as it writes
        rebuild_stage_intervals(connection)
        refresh_outcomes(connection)
        fill_exit_stages(connection)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def pipeline(workspace: Path) -> Pipeline:
    return load_pipeline(Workspace(workspace))


def report(database: Engine, pipeline: Pipeline, **wanted: Any) -> Report:
    with database.connect() as connection:
        open_intervals = wanted.pop("open_intervals", False)
        return build_report(
            connection, pipeline, ReportFilter(**wanted), NOW, open_intervals=open_intervals
        )


# --------------------------------------------------------------------------
# The funnel


def test_the_funnel_counts_contacts_now_entries_and_conversion(
    database: Engine, pipeline: Pipeline
) -> None:
    funnel = {s.stage: s for s in report(database, pipeline).funnel.stages}
    now = {stage: s.now for stage, s in funnel.items() if s.now}
    assert now == {"research": 1, "prospecting": 1, "qualification": 2, "lost": 1}
    entered = {stage: (s.entered, s.moved_on) for stage, s in funnel.items() if s.entered}
    # c2 went on from connecting only to lost, which is no conversion
    assert entered == {
        "research": (5, 4),
        "prospecting": (4, 3),
        "connecting": (3, 2),
        "qualification": (2, 0),
        "lost": (1, 0),
    }
    assert funnel["connecting"].conversion == pytest.approx(2 / 3)


def test_the_funnel_names_where_contacts_left(database: Engine, pipeline: Pipeline) -> None:
    exits = report(database, pipeline).funnel.exits
    # a suppression for the same contact and reason counts once; a soft bounce is no exit
    assert [(e.reason, e.stage, e.contacts) for e in exits] == [
        ("lost", "connecting", 1),
        ("unsubscribed", "prospecting", 1),
        ("complained", "qualification", 1),
        ("bounced", "research", 1),
    ]


def test_the_period_limits_entries(database: Engine, pipeline: Pipeline) -> None:
    funnel = report(database, pipeline, since=day(5), until=day(11)).funnel
    entered = {s.stage: (s.entered, s.moved_on) for s in funnel.stages if s.entered}
    # c1 connecting (5), c2 connecting (6), c3 prospecting (6), c2 lost (8),
    # c4 prospecting (9), c3 connecting (10)
    assert entered == {"connecting": (3, 2), "lost": (1, 0), "prospecting": (2, 1)}
    assert {s.stage: s.now for s in funnel.stages if s.now}["qualification"] == 2  # always now


# --------------------------------------------------------------------------
# Time in stage


def test_time_in_stage_gives_medians_and_90th_percentiles(
    database: Engine, pipeline: Pipeline
) -> None:
    times = report(database, pipeline).time_in_stage
    team = {s.stage: (s.stays, s.median_s / DAY, s.p90_s / DAY) for s in times.by_stage}
    assert list(team) == ["research", "prospecting", "connecting"]
    assert team["research"] == within((4, 5.0, 7.4))  # 2 4 6 8
    assert team["prospecting"] == within((3, 3.0, 3.8))  # 2 3 4
    assert team["connecting"] == within((3, 10.0, 18.0))  # 2 10 20
    mine = {(s.stage, s.owner): (s.median_s / DAY, s.p90_s / DAY) for s in times.by_owner}
    assert mine[("research", "ann@example.test")] == within((3.0, 3.8))
    assert mine[("connecting", "ann@example.test")] == within((6.0, 9.2))
    assert mine[("connecting", "bob@example.test")] == within((20.0, 20.0))
    assert times.slowest is not None and times.slowest.stage == "connecting"
    assert times.furthest is not None
    assert (times.furthest.owner, times.furthest.stage) == ("bob@example.test", "connecting")
    assert times.bottlenecks()[1].startswith("furthest from the team: bob@example.test in")


def test_time_in_stage_counts_running_stays_only_when_asked(
    database: Engine, pipeline: Pipeline
) -> None:
    times = report(database, pipeline, open_intervals=True).time_in_stage
    team = {s.stage: (s.stays, s.median_s / DAY) for s in times.by_stage}
    # c5 in research since day 2 (29 days at NOW); c4 in prospecting since day 9 (22 days)
    assert team["research"] == within((5, 6.0))
    assert team["prospecting"] == within((4, 3.5))
    assert team["qualification"] == within((2, 8.5))  # 16 and 1 days
    assert "lost" not in team  # only open stages have a time in stage


def test_time_in_stage_counts_stays_that_ended_in_the_period(
    database: Engine, pipeline: Pipeline
) -> None:
    times = report(database, pipeline, since=day(5)).time_in_stage
    team = {s.stage: (s.stays, s.median_s / DAY) for s in times.by_stage}
    assert team["research"] == within((2, 7.0))  # c3 and c4 left it on days 6 and 9


@given(st.lists(st.floats(min_value=0, max_value=4e7), min_size=1, max_size=60))
def test_histogram_percentiles_stay_within_the_accuracy_of_exact_ones(
    durations: list[float],
) -> None:
    histogram: dict[int, int] = {}
    with MEMORY.connect() as db:  # each bucket as the database computes it
        for seconds in durations:
            bucket = db.execute(select(duration_bucket(literal(seconds, Float)))).scalar_one()
            histogram[bucket] = histogram.get(bucket, 0) + 1
    n, median, p90 = histogram_quantiles(histogram)
    assert n == len(durations)
    for q, value in ((0.5, median), (0.9, p90)):
        assert value == pytest.approx(_percentile_cont(durations, q), rel=ACCURACY, abs=1.0)


MEMORY = create_engine("sqlite://")


def _percentile_cont(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


# --------------------------------------------------------------------------
# Sequences and variants


def test_steps_count_messages_with_bot_opens_apart(database: Engine, pipeline: Pipeline) -> None:
    steps = {(s.sequence, s.step): s for s in report(database, pipeline).steps}
    assert list(steps) == [("nurture", "welcome"), ("outreach", "intro"), ("outreach", "bump")]
    intro, bump = steps[("outreach", "intro")], steps[("outreach", "bump")]
    assert (intro.sent, intro.delivered, intro.opened, intro.bot_opened) == (40, 40, 22, 4)
    assert (intro.clicked, intro.replied, intro.auto_replied) == (5, 10, 1)
    assert intro.intents == {
        "interested": 5, "not_interested": 2, "objection": 2, "unclassified": 1
    }  # fmt: skip
    assert intro.rate("replied") == pytest.approx(0.25)
    assert (bump.sent, bump.delivered, bump.bounced, bump.unsubscribed, bump.complained) == (
        10, 8, 2, 1, 1,
    )  # fmt: skip


def test_variants_get_a_two_proportion_test_and_a_verdict(
    database: Engine, pipeline: Pipeline
) -> None:
    (ab,) = report(database, pipeline).variants
    a, b = ab.variants
    assert (a.variant, a.sent, a.opened, a.bot_opened, a.replied) == ("A", 20, 10, 4, 2)
    assert (b.variant, b.sent, b.opened, b.bot_opened, b.replied) == ("B", 20, 12, 0, 8)
    # by hand: pooled 10/40, se = sqrt(.25 * .75 * (1/20 + 1/20)) = 0.136931,
    # z = (.4 - .1) / se = 2.190890, p = erfc(z / sqrt 2) = 0.028459
    assert ab.reply_p == pytest.approx(0.028459, abs=1e-6)
    # opens: pooled 22/40, se = 0.157321, z = 0.635642, p = 0.525
    assert ab.open_p == pytest.approx(0.52500, abs=1e-4)
    assert (ab.leader, ab.runner_up, ab.verdict) == ("B", "A", "B leads, p=0.03")


def test_no_winner_yet_names_the_sends_still_needed() -> None:
    # pooled .125, se = sqrt(.125 * .875 * .1) = 0.104583, z = .05 / se = 0.478091
    assert two_proportion_p(2, 20, 3, 20) == pytest.approx(math.erfc(0.478091 / math.sqrt(2)))
    # Fleiss without continuity correction: ((1.959964 * sqrt(2 * .125 * .875)
    #   + 0.841621 * sqrt(.1 * .9 + .15 * .85)) / .05) ** 2 = 685.6
    assert sends_per_variant(0.10, 0.15) == 686


def test_a_period_without_variant_a_has_no_comparison(database: Engine, pipeline: Pipeline) -> None:
    built = report(database, pipeline, since=day(2))
    assert built.variants == ()
    steps = {(s.sequence, s.step): s.sent for s in built.steps}
    assert steps == {("outreach", "intro"): 20, ("outreach", "bump"): 10, ("nurture", "welcome"): 1}


# --------------------------------------------------------------------------
# Deliverability, days, filters


def test_deliverability_is_checked_against_the_bulk_sender_limits(
    database: Engine, pipeline: Pipeline
) -> None:
    health = report(database, pipeline).deliverability
    assert (health.sent, health.delivered, health.bounced, health.complained) == (51, 49, 2, 1)
    assert health.status == "over"
    assert [w.split(" ")[0:2] for w in health.warnings()] == [
        ["complaint", "rate"],
        ["bounce", "rate"],
    ]
    close = Deliverability(sent=10_000, delivered=9_900, bounced=160, complained=12)
    assert close.status == "warning"
    assert close.warnings() == [
        "complaint rate 0.12% is above the 0.1% to aim for (the limit is 0.3%)",
        "bounce rate 1.60% is close to the 2% limit",
    ]
    assert Deliverability(sent=10_000, delivered=9_990, bounced=10, complained=5).warnings() == []


def test_daily_sends_and_replies(database: Engine, pipeline: Pipeline) -> None:
    daily = {d.day.day: (d.sent, d.replied) for d in report(database, pipeline).daily}
    assert daily == {3: (20, 0), 4: (20, 0), 5: (0, 8), 6: (10, 3), 7: (1, 0)}


def test_an_owner_filter_keeps_that_owners_contacts(database: Engine, pipeline: Pipeline) -> None:
    built = report(database, pipeline, owner="Bob Baker")
    assert {s.stage: s.now for s in built.funnel.stages if s.now} == {
        "prospecting": 1, "qualification": 1
    }  # fmt: skip
    # Bob's contacts are c3 and c4: messages 3, 4, 8, 9, ... of intro, 43 and 44 of bump
    assert {(s.step, s.sent) for s in built.steps} == {("intro", 16), ("bump", 4)}
    assert report(database, pipeline, owner="BOB@example.test").funnel == built.funnel


def test_a_sequence_filter_keeps_its_messages_and_contacts(
    database: Engine, pipeline: Pipeline
) -> None:
    built = report(database, pipeline, sequence="nurture")
    assert [(s.sequence, s.step, s.sent) for s in built.steps] == [("nurture", "welcome", 1)]
    assert {s.stage: s.now for s in built.funnel.stages if s.now} == {"research": 1}


def test_unknown_filter_values_name_the_valid_ones(database: Engine, pipeline: Pipeline) -> None:
    with pytest.raises(ReportFilterError, match=r"unknown owner 'carol'; valid: Ann Archer"):
        report(database, pipeline, owner="carol")
    with pytest.raises(ReportFilterError, match=r"unknown sequence 'x'; valid: nurture, outreach"):
        report(database, pipeline, sequence="x")


# --------------------------------------------------------------------------
# The command


@pytest.fixture
def ready_workspace(workspace: Path, workspace_database: str, database: Engine) -> Path:
    """The starter workspace pointed at the hand-built history."""
    return workspace


def test_the_command_prints_json(ready_workspace: Path) -> None:
    result = invoke("report", "-w", ready_workspace, "--format", "json", "--owner", "Ann Archer")
    assert result.exit_code == 0, explain(result)
    data = json.loads(result.stdout)
    assert data["filter"]["owner"] == "Ann Archer"
    stages = {s["stage"]: s["entered"] for s in data["funnel"]["stages"] if s["entered"]}
    assert stages == {
        "research": 3,
        "prospecting": 2,
        "connecting": 2,
        "qualification": 1,
        "lost": 1,
    }
    assert data["deliverability"]["status"] == "over"


def test_the_command_prints_csv_sections(ready_workspace: Path) -> None:
    result = invoke("report", "-w", ready_workspace, "--format", "csv", "--until", "2026-03-05")
    assert result.exit_code == 0, explain(result)
    rows = list(csv.reader(io.StringIO(result.stdout)))
    sections = [row[0] for row in rows if row and row[0].startswith("# ")]
    assert sections == ["# funnel", "# exits", "# time_in_stage", "# sequences", "# variants",
                        "# deliverability", "# daily"]  # fmt: skip
    start = rows.index(["# variants"])
    assert rows[start + 1][:4] == ["sequence", "step", "variant", "sent"]
    # --until 2026-03-05 takes in the whole day: the sends of days 1 to 3
    assert rows[start + 2][:4] == ["outreach", "intro", "A", "20"]
    daily = rows[rows.index(["# daily"]) + 2 :]
    assert daily[:2] == [["2026-03-03", "20", "0"], ["2026-03-04", "20", "0"]]


def test_the_command_prints_tables(ready_workspace: Path) -> None:
    result = invoke("report", "-w", ready_workspace, "--sequence", "outreach")
    assert result.exit_code == 0, explain(result)
    for needle in ("Funnel", "Time in stage", "slowest stage: Connecting", "A/B variants",
                   "B leads, p=0.03", "complaint rate", "over the 2% limit"):  # fmt: skip
        assert needle in result.stdout


def test_the_command_writes_one_self_contained_html_file(
    ready_workspace: Path, tmp_path: Path
) -> None:
    target = tmp_path / "report.html"
    result = invoke("report", "-w", ready_workspace, "--html", target)
    assert result.exit_code == 0, explain(result)
    page = target.read_text(encoding="utf-8")
    assert page.count("<svg") == 3 and "<polyline" in page
    assert "B leads, p=0.03" in page and "Bob Baker" not in page
    assert not re.search(r"https?:|<script|<link|@import|url\(", page)


def test_bad_filter_values_are_one_line_errors(ready_workspace: Path) -> None:
    result = invoke("report", "-w", ready_workspace, "--sequence", "nope")
    assert result.exit_code == 1
    # the workspace's sequences and the stored ones (``outreach``, ``nurture``)
    assert result.stderr.startswith("error: unknown sequence 'nope'; valid: ")
    assert ", nurture, outreach" in result.stderr and "connecting-outreach" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = invoke("report", "-w", ready_workspace, "--since", "last tuesday")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --since 'last tuesday' is not a date; write a date")
    result = invoke("report", "-w", ready_workspace, "--format", "xml")
    assert result.exit_code == 2 and "table" in result.output and "csv" in result.output
