"""A/B/n variants: a contact gets the same variant every time, in proportion to the weights."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pytest

from engine.sequences.variants import choose_variant

CONTACTS = range(1, 20_001)


def _shares(
    weights: Mapping[str, int], sequence: str = "outreach", step: str = "intro"
) -> dict[str, float]:
    counts = Counter(choose_variant(weights, contact, sequence, step) for contact in CONTACTS)
    return {name: counts[name] / len(CONTACTS) for name in weights}


def _assignments(weights: Mapping[str, int], sequence: str, step: str) -> list[str]:
    return [choose_variant(weights, contact, sequence, step) for contact in range(2_000)]


def test_the_same_contact_gets_the_same_variant_every_time() -> None:
    weights = {"a": 1, "b": 1, "c": 1}

    first = _assignments(weights, "outreach", "intro")
    again = _assignments(dict(weights), "outreach", "intro")

    assert first == again
    assert set(first) == {"a", "b", "c"}


def test_the_choice_is_pinned() -> None:
    # A change of hash would move live contacts to another variant in the middle of a test.
    two = [choose_variant({"a": 1, "b": 1}, contact, "outreach", "intro") for contact in range(12)]
    three = [
        choose_variant({"a": 1, "b": 1, "c": 1}, contact, "outreach", "intro")
        for contact in range(12)
    ]

    assert "".join(two) == "baababaaaabb"
    assert "".join(three) == "abaabcacccac"


@pytest.mark.parametrize(
    ("other_sequence", "other_step"),
    [("outreach", "follow-up"), ("nurture", "intro"), ("intro", "outreach")],
)
def test_another_step_or_sequence_reshuffles(other_sequence: str, other_step: str) -> None:
    weights = {"a": 1, "b": 1}
    here = _assignments(weights, "outreach", "intro")
    there = _assignments(weights, other_sequence, other_step)

    changed = sum(x != y for x, y in zip(here, there, strict=True)) / len(here)

    # Independent 50/50 draws disagree about half the time.
    assert 0.4 < changed < 0.6


def test_sequence_and_step_are_not_glued_together() -> None:
    # "ab" + "c" and "a" + "bc" are different places in the campaign.
    weights = {"a": 1, "b": 1}

    assert _assignments(weights, "ab", "c") != _assignments(weights, "a", "bc")


def test_equal_weights_split_evenly() -> None:
    shares = _shares({"a": 1, "b": 1})

    assert shares["a"] == pytest.approx(0.5, abs=0.02)
    assert shares["b"] == pytest.approx(0.5, abs=0.02)


def test_weights_set_the_proportions() -> None:
    shares = _shares({"a": 3, "b": 1})

    assert shares["a"] == pytest.approx(0.75, abs=0.02)
    assert shares["b"] == pytest.approx(0.25, abs=0.02)


def test_three_way_split() -> None:
    shares = _shares({"control": 2, "short": 1, "story": 1})

    assert shares["control"] == pytest.approx(0.50, abs=0.02)
    assert shares["short"] == pytest.approx(0.25, abs=0.02)
    assert shares["story"] == pytest.approx(0.25, abs=0.02)


def test_the_split_holds_on_another_step() -> None:
    shares = _shares({"a": 1, "b": 1, "c": 1}, sequence="nurture", step="day-14")

    for name in ("a", "b", "c"):
        assert shares[name] == pytest.approx(1 / 3, abs=0.02)


def test_a_single_variant_gets_everyone() -> None:
    assert {choose_variant({"only": 5}, contact, "s", "t") for contact in range(500)} == {"only"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({"x": 1, "y": 1, "z": 3}, {"z": 3, "x": 1, "y": 1}),
    ],
)
def test_the_order_of_the_mapping_does_not_matter(
    first: Mapping[str, int], second: Mapping[str, int]
) -> None:
    assert list(first) != list(second)
    assert _assignments(first, "outreach", "intro") == _assignments(second, "outreach", "intro")


@pytest.mark.parametrize(
    "weights",
    [{}, {"a": 0}, {"a": 1, "b": 0}, {"a": -1, "b": 2}, {"a": 2, "b": -5}],
)
def test_empty_or_weights_below_one_are_refused(weights: Mapping[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        choose_variant(weights, 1, "outreach", "intro")
