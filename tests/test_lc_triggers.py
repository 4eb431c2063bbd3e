"""Trigger evaluation: pure functions checked at their boundaries with plain values."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from lc.errors import InvalidTrigger
from lc.triggers import (
    OPERATORS,
    Trigger,
    check_due,
    compare,
    evaluate,
    in_window,
    parse_time_of_day,
    parse_trigger,
    precision_delta,
)

# The train trigger of the incremental learning sample (seed 003).
SAMPLE_TRAIN = {
    "checkPeriodSeconds": 60,
    "timer": {"start": "02:00", "end": "20:00"},
    "condition": {"operator": ">", "threshold": 500, "metric": "num_of_samples"},
}
SAMPLE_DEPLOY = {"condition": {"operator": ">", "threshold": 0.1, "metric": "precision_delta"}}


# operator -> expected results for value below, equal to and above the threshold
COMPARE_TABLE = {
    ">": (False, False, True),
    "<": (True, False, False),
    ">=": (False, True, True),
    "<=": (True, True, False),
    "==": (False, True, False),
    "!=": (True, False, True),
}


@pytest.mark.parametrize("operator", OPERATORS)
def test_compare_below_at_and_above_threshold(operator: str) -> None:
    results = tuple(compare(operator, value, 500) for value in (499, 500, 501))
    assert results == COMPARE_TABLE[operator]


def test_compare_equality_tolerates_float_rounding() -> None:
    assert compare("==", 0.1 + 0.2, 0.3) and not compare("!=", 0.1 + 0.2, 0.3)
    assert not compare("==", 0.3001, 0.3)


def test_compare_unknown_operator() -> None:
    with pytest.raises(ValueError, match="operator must be one of"):
        compare("=>", 1, 1)


@pytest.mark.parametrize(
    ("start", "end", "now", "inside"),
    [
        ("02:00", "20:00", "02:00", True),  # start is inclusive
        ("02:00", "20:00", "01:59", False),
        ("02:00", "20:00", "19:59", True),
        ("02:00", "20:00", "20:00", False),  # end is exclusive
        ("22:00", "06:00", "22:00", True),  # wraps midnight
        ("22:00", "06:00", "23:59", True),
        ("22:00", "06:00", "00:00", True),
        ("22:00", "06:00", "05:59", True),
        ("22:00", "06:00", "06:00", False),
        ("22:00", "06:00", "21:59", False),
        ("22:00", "06:00", "12:00", False),
        ("08:00", "08:00", "03:00", True),  # equal ends: all day
        ("00:00", "23:59", "23:59", False),
    ],
)
def test_in_window_boundaries(start: str, end: str, now: str, inside: bool) -> None:
    window = (parse_time_of_day(start), parse_time_of_day(end))
    assert in_window(*window, parse_time_of_day(now)) is inside


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("02:00", time(2, 0)),
        ("2:05", time(2, 5)),
        (" 23:59 ", time(23, 59)),
        (1200, time(20, 0)),  # PyYAML reads an unquoted 20:00 as 1200 (base 60)
        (0, time(0, 0)),
        (time(7, 30), time(7, 30)),
    ],
)
def test_parse_time_of_day(value: object, expected: time) -> None:
    assert parse_time_of_day(value) == expected


@pytest.mark.parametrize("value", ["24:00", "12:60", "noon", "12", "", 1440, -1, True, 3.5])
def test_parse_time_of_day_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="time of day"):
        parse_time_of_day(value)


def test_sample_train_trigger_fires_inside_window_above_threshold() -> None:
    noon = datetime(2024, 5, 1, 12, 0)
    assert evaluate(SAMPLE_TRAIN, {"num_of_samples": 501}, noon).fired
    at = evaluate(SAMPLE_TRAIN, {"num_of_samples": 500}, noon)
    assert not at.fired and at.reason == "not num_of_samples 500 > 500"
    late = evaluate(SAMPLE_TRAIN, {"num_of_samples": 10_000}, datetime(2024, 5, 1, 20, 0))
    assert not late.fired and late.reason == "20:00 is outside 02:00-20:00"
    assert evaluate(SAMPLE_TRAIN, {"num_of_samples": 501}, time(2, 0)).fired


def test_sample_deploy_trigger_on_precision_delta() -> None:
    delta = precision_delta({"precision": 0.95, "recall": 0.5}, {"precision": 0.8})
    assert delta == pytest.approx(0.15)
    assert evaluate(SAMPLE_DEPLOY, {"precision_delta": delta}, time(3, 0)).fired
    small = precision_delta({"precision": 0.85}, {"precision": 0.8})
    assert not evaluate(SAMPLE_DEPLOY, {"precision_delta": small}, time(3, 0)).fired


def test_precision_delta_needs_the_metric_on_both_models() -> None:
    with pytest.raises(KeyError, match="new model has no 'precision'"):
        precision_delta({}, {"precision": 1})
    with pytest.raises(KeyError, match="deployed model has no 'precision'"):
        precision_delta({"precision": 1}, {})


def test_missing_metric_does_not_fire() -> None:
    result = evaluate(SAMPLE_TRAIN, {"precision_delta": 9}, time(12, 0))
    assert not result.fired and "num_of_samples is not available" in result.reason


def test_no_condition_means_timer_alone_and_no_timer_means_always() -> None:
    timer_only = {"timer": {"start": "22:00", "end": "02:00"}}
    assert evaluate(timer_only, {}, time(23, 0)).fired
    assert not evaluate(timer_only, {}, time(3, 0)).fired
    assert evaluate({}, {}, time(3, 0)).fired
    assert evaluate(SAMPLE_DEPLOY, {"precision_delta": 0.2}, time(23, 59)).fired


@pytest.mark.parametrize(
    ("period", "last", "now", "due"),
    [(60, None, 0.0, True), (60, 100.0, 159.9, False), (60, 100.0, 160.0, True)],
)
def test_check_due(period: float, last: float | None, now: float, due: bool) -> None:
    assert check_due(period, last, now) is due


def test_defaults_and_parse() -> None:
    trigger = parse_trigger({"condition": SAMPLE_TRAIN["condition"]})
    assert trigger.check_period_seconds == 60 and trigger.timer is None
    assert parse_trigger(trigger) is trigger
    assert isinstance(parse_trigger(SAMPLE_TRAIN), Trigger)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"condition": {"operator": "=>", "threshold": 1, "metric": "num_of_samples"}}, "operator"),
        ({"condition": {"operator": ">", "threshold": 1, "metric": "accuracy"}}, "metric"),
        (
            {"condition": {"operator": ">", "threshold": "many", "metric": "num_of_samples"}},
            "threshold",
        ),
        ({"condition": {"operator": ">", "metric": "num_of_samples"}}, "condition.threshold"),
        ({"timer": {"start": "25:00", "end": "20:00"}}, "timer.start"),
        ({"timer": {"start": "02:00"}}, "timer.end"),
        ({"checkPeriodSeconds": 0}, "checkPeriodSeconds"),
    ],
)
def test_invalid_trigger_names_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidTrigger) as err:
        evaluate({**SAMPLE_TRAIN, **change}, {"num_of_samples": 1}, time(12, 0))
    assert field in str(err.value)
