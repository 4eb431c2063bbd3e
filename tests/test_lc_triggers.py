"""Triggers: evaluation (apis.triggers) and the LC's check cadence (lc.triggers), with plain
values and a fake clock, never sleeps."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from apis.kinds import Trigger
from apis.triggers import (
    ALIASES,
    OPERATORS,
    InvalidTrigger,
    compare,
    evaluate,
    in_window,
    metric_deltas,
    metric_value,
    parse_trigger,
)
from lc.triggers import TriggerCheck, check_due
from tests.clock import FakeClock

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


@pytest.mark.parametrize("operator", OPERATORS + tuple(ALIASES))
def test_compare_below_at_and_above_threshold(operator: str) -> None:
    canonical = ALIASES.get(operator, operator)
    results = tuple(compare(operator, value, 500) for value in (499, 500, 501))
    assert results == COMPARE_TABLE[canonical]


def test_compare_equality_tolerates_float_rounding() -> None:
    assert compare("==", 0.1 + 0.2, 0.3) and not compare("!=", 0.1 + 0.2, 0.3)
    assert compare("=", 0.3000001, 0.3) and not compare(">", 0.3000001, 0.3)
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
        ("02:00", "24:00", "23:59", True),  # 24:00 is the end of the day
        ("02:00", "24:00", "00:00", False),
        ("02:00", "24:00", "01:59", False),
        ("00:00", "24:00", "00:00", True),
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
    hour, minute = (int(p) for p in now.split(":"))
    assert in_window(start, end, time(hour, minute)) is inside


def test_sample_train_trigger_fires_inside_window_above_threshold() -> None:
    noon = datetime(2024, 5, 1, 12, 0)
    assert evaluate(SAMPLE_TRAIN, {"num_of_samples": 501}, noon).fired
    at = evaluate(SAMPLE_TRAIN, {"num_of_samples": 500}, noon)
    assert not at.fired and at.reason == "not num_of_samples 500 > 500"
    late = evaluate(SAMPLE_TRAIN, {"num_of_samples": 10_000}, datetime(2024, 5, 1, 20, 0))
    assert not late.fired and late.reason == "20:00 is outside 02:00-20:00"
    assert evaluate(SAMPLE_TRAIN, {"num_of_samples": 501}, time(2, 0)).fired


def test_deploy_trigger_on_scalar_delta() -> None:
    metrics = metric_deltas({"precision": 0.95, "recall": 0.5}, {"precision": 0.8})
    assert metrics["precision_delta"] == pytest.approx(0.15)
    assert "recall_delta" not in metrics  # the deployed model has no recall: no delta
    assert evaluate(SAMPLE_DEPLOY, metrics, time(3, 0)).fired
    small = metric_deltas({"precision": 0.85}, {"precision": 0.8})
    assert not evaluate(SAMPLE_DEPLOY, small, time(3, 0)).fired


def test_deploy_trigger_on_list_metrics_with_and_without_index() -> None:
    # upstream's eval workers report per-class lists; upstream fires only with an index
    metrics = metric_deltas({"precision": [0.9, 0.7]}, {"precision": [0.6, 0.7]})
    assert metrics["precision_delta"] == pytest.approx([0.3, 0.0])
    indexed = {"condition": {"operator": "gt", "threshold": 0.1, "metric": "precision_delta[0]"}}
    assert evaluate(indexed, metrics, time(3, 0)).fired
    second = {"condition": {"operator": ">", "threshold": 0.1, "metric": "precision_delta[1]"}}
    assert not evaluate(second, metrics, time(3, 0)).fired
    # without an index a list is its mean: 0.15 > 0.1 (upstream: 0, never fires)
    assert evaluate(SAMPLE_DEPLOY, metrics, time(3, 0)).fired
    out_of_range = {"condition": {"operator": ">", "threshold": 0, "metric": "precision[5]"}}
    result = evaluate(out_of_range, metrics, time(3, 0))
    assert not result.fired and "not available" in result.reason


def test_metric_value_shapes() -> None:
    assert metric_value({"acc": "0.5"}, "acc") == 0.5
    assert metric_value({"acc": "n/a"}, "acc") is None
    assert metric_value({"acc": 0.5}, "acc[0]") is None
    assert metric_value({"acc": []}, "acc") is None
    assert metric_value({"acc": True}, "acc") is None
    assert metric_deltas({"p": [1.0, 2.0]}, {"p": [1.0]}) == {"p": [1.0, 2.0]}  # shape differs


def test_missing_metric_does_not_fire() -> None:
    result = evaluate(SAMPLE_TRAIN, {"precision_delta": 9}, time(12, 0))
    assert not result.fired and "num_of_samples is not available" in result.reason


def test_no_condition_means_timer_alone_and_no_timer_means_always() -> None:
    timer_only = {"timer": {"start": "22:00", "end": "02:00"}}
    assert evaluate(timer_only, {}, time(23, 0)).fired
    assert not evaluate(timer_only, {}, time(3, 0)).fired
    assert evaluate({}, {}, time(3, 0)).fired
    assert evaluate(None, {}, time(3, 0)).fired
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
        ({"condition": {"operator": ">", "threshold": 1, "metric": "a b"}}, "metric"),
        (
            {"condition": {"operator": ">", "threshold": "many", "metric": "num_of_samples"}},
            "threshold",
        ),
        ({"condition": {"operator": ">", "metric": "num_of_samples"}}, "condition.threshold"),
        ({"timer": {"start": "25:00", "end": "20:00"}}, "timer.start"),
        ({"timer": {"start": "02:00", "end": "24:01"}}, "timer.end"),
        ({"timer": {"start": "02:00"}}, "timer.end"),
        ({"checkPeriodSeconds": 0}, "checkPeriodSeconds"),
        ({"checkPeriodSeconds": -5}, "checkPeriodSeconds"),
    ],
)
def test_invalid_trigger_names_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidTrigger) as err:
        evaluate({**SAMPLE_TRAIN, **change}, {"num_of_samples": 1}, time(12, 0))
    assert field in str(err.value)


def test_check_period_is_honoured_to_the_second() -> None:
    clock = FakeClock()
    check = TriggerCheck({**SAMPLE_TRAIN, "checkPeriodSeconds": 30}, clock)
    assert check.poll({"num_of_samples": 10}) is not None  # the first check is at once
    clock.advance(29.9)
    assert check.poll({"num_of_samples": 10_000}) is None  # not due: nothing evaluated
    assert check.seconds_until_due() == pytest.approx(0.1)
    clock.advance(0.1)
    result = check.poll({"num_of_samples": 10_000})
    assert result is not None and result.fired
    assert check.poll({"num_of_samples": 10_000}) is None


def test_check_outside_the_window_does_not_fire_until_it_opens() -> None:
    clock = FakeClock(wall=datetime(2024, 5, 1, 1, 59, 0))
    check = TriggerCheck({**SAMPLE_TRAIN, "checkPeriodSeconds": 60}, clock)
    result = check.poll({"num_of_samples": 10_000})
    assert result is not None and not result.fired and "outside" in result.reason
    clock.advance(60)  # 02:00: the window opens
    result = check.poll({"num_of_samples": 10_000})
    assert result is not None and result.fired
