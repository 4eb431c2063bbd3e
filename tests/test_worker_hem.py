"""Hard example mining algorithms: boundaries, bad parameters, bad input, environment."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sedna.algorithms.hard_example_mining import (
    CloudOnlyFilter,
    CrossEntropyFilter,
    EdgeOnlyFilter,
    IBTFilter,
    RandomFilter,
    ThresholdFilter,
    build_hem,
    hem_config_from_env,
    hem_from_env,
    parse_hem_parameters,
    resolve_hem,
)
from sedna.common.errors import ConfigError, InvalidInputError, UnknownAlgorithmError


def test_ibt_share_exactly_at_bound_is_hard() -> None:
    hem = IBTFilter(threshold_img="0.75", threshold_box="0.5")
    # 1 of 4 boxes is low: share 0.25 == 1 - 0.75.
    assert hem([0.9, 0.8, 0.7, 0.2]) is True
    assert hem([0.9, 0.8, 0.7, 0.6]) is False


def test_ibt_box_score_exactly_at_threshold_counts_as_low() -> None:
    hem = IBTFilter(threshold_img=0.0, threshold_box=0.5)
    # threshold_img 0: hard only when every box is low.
    assert hem([0.5, 0.5]) is True
    assert hem([0.5, 0.50001]) is False


def test_ibt_common_threshold_with_float_rounding() -> None:
    hem = IBTFilter(threshold_img=0.9, threshold_box=0.9)
    # 1 - 0.9 is 0.0999...; one low box in ten must still count.
    assert hem([0.95] * 9 + [0.3]) is True
    assert hem([0.95] * 10) is False


def test_ibt_image_without_boxes_is_not_hard() -> None:
    assert IBTFilter(threshold_img=1.0)([]) is False


def test_ibt_accepts_sedna_detection_boxes() -> None:
    boxes = [[0, 0, 10, 10, 0.2, 1], [5, 5, 20, 20, 0.95, 0]]
    assert IBTFilter(threshold_img=0.5, threshold_box=0.5)(boxes) is True
    assert IBTFilter(threshold_img=0.4, threshold_box=0.5)(boxes) is False


@pytest.mark.parametrize("bad", [["a", 0.3], [[0.1, 0.2]], [0.1, float("nan")], "scores"])
def test_ibt_bad_input(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="IBT"):
        IBTFilter()(bad)


def test_cross_entropy_boundaries() -> None:
    # A one-hot vector (with p = 0 entries) has confidence exactly 1: below 1.0 is false.
    assert CrossEntropyFilter(threshold_cross_entropy=1.0)([1.0, 0.0, 0.0]) is False
    # The uniform vector has confidence exactly 0: below 0 is false, below 0.01 is true.
    assert CrossEntropyFilter(threshold_cross_entropy=0.0)([0.5, 0.5]) is False
    assert CrossEntropyFilter(threshold_cross_entropy=0.01)([0.5, 0.5]) is True


def test_cross_entropy_confidence_value() -> None:
    hem = CrossEntropyFilter()
    p = np.array([0.7, 0.2, 0.1])
    expected = 1 + float(np.sum(p * np.log(p))) / np.log(3)
    assert hem.confidence(p[None, :])[0] == pytest.approx(expected)
    assert hem(p) is bool(expected < 0.5)


def test_cross_entropy_batch_matches_single() -> None:
    rng = np.random.default_rng(0)
    batch = rng.dirichlet(np.ones(10) * 0.3, size=50)
    hem = CrossEntropyFilter(threshold_cross_entropy="0.6")
    assert hem.is_hard_batch(batch) == [hem(row) for row in batch]
    assert hem.is_hard_batch([]) == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "at least 2"),
        ([1.0], "at least 2"),
        ([0.5, 0.6], "sum to 1"),
        ([1.5, -0.5], ">= 0"),
        ([[0.5, 0.5]], "probability vector"),
        (["x", "y"], "probability vector"),
    ],
)
def test_cross_entropy_bad_input(bad: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        CrossEntropyFilter()(bad)


def test_threshold_mean_and_alias() -> None:
    hem = build_hem("ThresholdFilter", {"threshold": "0.5"})
    assert isinstance(hem, ThresholdFilter)
    assert hem([0.4, 0.6]) is False  # mean exactly 0.5 is not below 0.5
    assert hem([0.4, 0.59]) is True
    assert hem([]) is False
    assert isinstance(build_hem("Threshold"), ThresholdFilter)


def test_random_is_seedable_and_respects_bounds() -> None:
    first = RandomFilter(random_ratio="0.3", seed="7")
    second = RandomFilter(random_ratio=0.3, seed=7)
    draws = [first(None) for _ in range(200)]
    assert draws == [second(None) for _ in range(200)]
    assert 0 < sum(draws) < 200
    assert not any(RandomFilter(random_ratio=0)(None) for _ in range(50))
    assert all(RandomFilter(random_ratio=1)(None) for _ in range(50))


def test_edge_only_and_cloud_only() -> None:
    assert EdgeOnlyFilter()([0.0]) is False
    assert CloudOnlyFilter()([1.0]) is True
    assert build_hem("CloudOnly").is_hard_batch([1, 2]) == [True, True]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("IBT", {"threshold_img": "high"}, "threshold_img.*valid number"),
        ("IBT", {"threshold_box": "-0.1"}, "threshold_box.*greater than or equal"),
        ("IBT", {"threshold": "0.5"}, "unknown parameter 'threshold'"),
        ("CrossEntropy", {"threshold_cross_entropy": "2"}, "less than or equal to 1"),
        ("Random", {"random_ratio": "nan"}, "finite"),
        ("Random", {"seed": "1.5"}, "seed"),
        ("EdgeOnly", {"x": "1"}, "unknown parameter 'x'"),
    ],
)
def test_bad_parameters_fail_at_construction(name: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_hem(name, params)


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(UnknownAlgorithmError, match=r"'Nope'.*CrossEntropy.*IBT"):
        build_hem("Nope")


def test_parse_hem_parameters() -> None:
    raw = json.dumps(
        [{"key": "threshold_img", "value": "0.9"}, {"key": "threshold_box", "value": 0.8}]
    )
    assert parse_hem_parameters(raw) == {"threshold_img": "0.9", "threshold_box": 0.8}
    assert parse_hem_parameters(None) == {}
    assert parse_hem_parameters("  ") == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[{", "not valid JSON"),
        ('{"threshold_img": "0.9"}', "JSON list"),
        ('[{"key": "a"}]', r"HEM_PARAMETERS\[0\]: value"),
        ('[{"name": "a", "value": "1"}]', r"HEM_PARAMETERS\[0\]"),
        ('[{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]', "given twice"),
    ],
)
def test_parse_hem_parameters_rejects_malformed(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_hem_parameters(raw)


def test_hem_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEM_NAME", raising=False)
    monkeypatch.delenv("HEM_PARAMETERS", raising=False)
    assert hem_from_env() is None
    assert isinstance(hem_from_env("EdgeOnly"), EdgeOnlyFilter)

    monkeypatch.setenv("HEM_NAME", "IBT")
    monkeypatch.setenv("HEM_PARAMETERS", '[{"key": "threshold_img", "value": "0.9"}]')
    hem = hem_from_env(threshold_img=0.1, threshold_box=0.7)
    assert isinstance(hem, IBTFilter)
    assert hem.params.threshold_img == 0.9  # the environment overrides script defaults
    assert hem.params.threshold_box == 0.7
    assert hem_config_from_env(threshold_box=0.7) == {
        "method": "IBT",
        "param": {"threshold_box": 0.7, "threshold_img": "0.9"},
    }

    monkeypatch.setenv("HEM_PARAMETERS", '[{"key": "threshold_img", "value": "lots"}]')
    with pytest.raises(ConfigError, match="threshold_img"):
        hem_from_env()


def test_resolve_hem_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEM_NAME", raising=False)
    hem = CrossEntropyFilter()
    assert resolve_hem(hem) is hem
    assert isinstance(resolve_hem("CloudOnly"), CloudOnlyFilter)
    built = resolve_hem({"method": "IBT", "param": {"threshold_img": "0.2"}})
    assert isinstance(built, IBTFilter)
    assert resolve_hem({"method": None, "param": {}}) is None
    assert resolve_hem(None) is None
    with pytest.raises(ConfigError, match="'method' and 'param'"):
        resolve_hem({"name": "IBT"})
    with pytest.raises(ConfigError, match="got int"):
        resolve_hem(3)
