"""Aggregation rules on small arrays, with expected values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sedna.algorithms.aggregation import (
    AggregationError,
    ClientUpdate,
    FedAvgM,
    FedProx,
    ProximalTerm,
    aggregation_names,
    get_aggregation,
)
from sedna.common.errors import ConfigError, UnknownAlgorithmError


def update(worker: str, samples: int, *tensors: list[float]) -> ClientUpdate:
    return ClientUpdate(worker, samples, [np.array(t, dtype=np.float32) for t in tensors])


def test_registry_names_the_four_rules() -> None:
    assert {"FedAvg", "FedAvgM", "FedProx", "TrimmedMean"} <= set(aggregation_names())


def test_fedavg_weights_by_samples() -> None:
    rule = get_aggregation("FedAvg")
    rule.configure_round(1, None)
    result = rule.aggregate(
        [update("a", 1, [1.0, 2.0], [10.0]), update("b", 3, [3.0, 6.0], [-2.0])]
    )
    # (1*1 + 3*3)/4 = 2.5, (1*2 + 3*6)/4 = 5, (1*10 + 3*-2)/4 = 1
    np.testing.assert_allclose(result[0], [2.5, 5.0])
    np.testing.assert_allclose(result[1], [1.0])
    assert result[0].dtype == np.float32


def test_fedavg_rounds_integer_tensors() -> None:
    rule = get_aggregation("FedAvg")
    updates = [
        ClientUpdate("a", 1, [np.array([1, 10], dtype=np.int64)]),
        ClientUpdate("b", 1, [np.array([2, 13], dtype=np.int64)]),
        ClientUpdate("c", 2, [np.array([4, 20], dtype=np.int64)]),
    ]
    # (1 + 2 + 8)/4 = 2.75 -> 3; (10 + 13 + 40)/4 = 15.75 -> 16
    result = rule.aggregate(updates)
    assert result[0].dtype == np.int64
    np.testing.assert_array_equal(result[0], [3, 16])


def test_fedavgm_applies_server_momentum() -> None:
    rule = get_aggregation("FedAvgM", server_lr=0.5, momentum=0.9)
    rule.configure_round(1, [np.array([0.0, 0.0], dtype=np.float32)])
    first = rule.aggregate([update("a", 1, [1.0, 2.0]), update("b", 3, [3.0, 6.0])])
    # mean = [2.5, 5]; d = g - mean = [-2.5, -5]; v = d; g' = g - 0.5 v = [1.25, 2.5]
    np.testing.assert_allclose(first[0], [1.25, 2.5])

    rule.configure_round(2, first)
    second = rule.aggregate([update("a", 1, [2.25, 2.5])])
    # mean = [2.25, 2.5]; d = [1.25, 2.5] - mean = [-1, 0]; v = 0.9*[-2.5, -5] + d = [-3.25, -4.5]
    # g'' = [1.25, 2.5] - 0.5 v = [2.875, 4.75]
    np.testing.assert_allclose(second[0], [2.875, 4.75])


def test_fedavgm_state_restores_the_momentum() -> None:
    original = FedAvgM(server_lr=1.0, momentum=0.5)
    original.configure_round(1, [np.zeros(2, dtype=np.float32)])
    first = original.aggregate([update("a", 1, [2.0, 4.0])])
    restored = FedAvgM(server_lr=1.0, momentum=0.5)
    restored.load_state(original.state())
    for rule in (original, restored):
        rule.configure_round(2, first)
    expected = original.aggregate([update("a", 1, [3.0, 4.0])])
    np.testing.assert_allclose(restored.aggregate([update("a", 1, [3.0, 4.0])])[0], expected[0])
    # v1 = [-2, -4]; d2 = [2, 4] - [3, 4] = [-1, 0]; v2 = 0.5 v1 + d2 = [-2, -2]; g = [4, 6]
    np.testing.assert_allclose(expected[0], [4.0, 6.0])


def test_fedavgm_without_a_previous_model_is_fedavg() -> None:
    rule = get_aggregation("FedAvgM")
    rule.configure_round(1, None)
    result = rule.aggregate([update("a", 1, [1.0]), update("b", 1, [3.0])])
    np.testing.assert_allclose(result[0], [2.0])


def test_fedprox_aggregates_as_fedavg_and_hands_mu_to_clients() -> None:
    rule = get_aggregation("FedProx", mu=0.1)
    assert isinstance(rule, FedProx)
    assert rule.client_config() == {"mu": 0.1}
    result = rule.aggregate([update("a", 1, [1.0, 2.0]), update("b", 3, [3.0, 6.0])])
    np.testing.assert_allclose(result[0], [2.5, 5.0])


def test_proximal_term_penalty_and_gradient() -> None:
    global_weights = [np.array([0.0, 1.0]), np.array([[2.0]])]
    term = ProximalTerm(0.1, global_weights)
    weights = [np.array([1.0, 2.0]), np.array([[0.0]])]
    # ||w - g||^2 = 1 + 1 + 4 = 6; penalty = 0.1 / 2 * 6 = 0.3
    assert term.penalty(weights) == pytest.approx(0.3)
    gradient = term.gradient(weights)
    np.testing.assert_allclose(gradient[0], [0.1, 0.1])
    np.testing.assert_allclose(gradient[1], [[-0.2]])


def test_proximal_term_takes_named_weights() -> None:
    term = ProximalTerm(2.0, {"w": np.array([1.0])})
    assert term.gradient({"w": np.array([3.0])}) == {"w": pytest.approx(np.array([4.0]))}
    with pytest.raises(ValueError, match="differ in tensors"):
        term.penalty({"v": np.array([3.0])})


def test_trimmed_mean_drops_extremes_per_coordinate() -> None:
    rule = get_aggregation("TrimmedMean", trim_ratio=0.2)
    updates = [
        update("a", 1, [1.0, 50.0]),
        update("b", 100, [2.0, -9.0]),
        update("c", 1, [3.0, 4.0]),
        update("d", 1, [4.0, 5.0]),
        update("e", 1, [100.0, 6.0]),
    ]
    # floor(0.2 * 5) = 1 value dropped at each end, sample counts ignored:
    # first coordinate keeps 2, 3, 4 -> 3; second keeps 4, 5, 6 -> 5
    np.testing.assert_allclose(rule.aggregate(updates)[0], [3.0, 5.0])


def test_trimmed_mean_with_nothing_to_trim_is_the_plain_mean() -> None:
    rule = get_aggregation("TrimmedMean", trim_ratio=0.2)
    result = rule.aggregate([update("a", 1, [1.0]), update("b", 9, [4.0])])
    np.testing.assert_allclose(result[0], [2.5])


def test_mismatched_updates_are_refused() -> None:
    rule = get_aggregation("FedAvg")
    with pytest.raises(AggregationError, match="no updates"):
        rule.aggregate([])
    with pytest.raises(AggregationError, match=r"tensor 0 of 'b'"):
        rule.aggregate([update("a", 1, [1.0, 2.0]), update("b", 1, [1.0])])
    with pytest.raises(AggregationError, match="has 0 samples"):
        rule.aggregate([update("a", 0, [1.0])])
    with pytest.raises(AggregationError, match="has 2 tensors"):
        rule.aggregate([update("a", 1, [1.0]), update("b", 1, [1.0], [2.0])])


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("FedAvgM", {"momentum": 1.5}, "momentum"),
        ("FedAvgM", {"server_lr": -1}, "server_lr"),
        ("FedAvgM", {"server_lr": "fast"}, "server_lr must be a number"),
        ("FedProx", {"mu": -0.1}, "mu"),
        ("TrimmedMean", {"trim_ratio": 0.5}, "below 0.5"),
        ("FedAvg", {"mu": 1}, "bad parameters for aggregation 'FedAvg'"),
    ],
)
def test_bad_parameters_are_reported(name: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_aggregation(name, **params)


def test_unknown_rule_is_reported() -> None:
    with pytest.raises(UnknownAlgorithmError, match="'FedMagic'"):
        get_aggregation("FedMagic")


def _large_updates(handed_over: bool) -> list[ClientUpdate]:
    # Larger than one block, so the blockwise sum crosses block edges.
    size = (1 << 18) * 2 + 5
    rng = np.random.default_rng(0)
    return [
        ClientUpdate(name, samples, [rng.standard_normal(size).astype(np.float32)], handed_over)
        for name, samples in (("a", 1), ("b", 2), ("c", 5))
    ]


def test_fedavg_leaves_updates_untouched_unless_handed_over() -> None:
    updates = _large_updates(handed_over=False)
    before = [update.weights[0].copy() for update in updates]
    result = get_aggregation("FedAvg").aggregate(updates)
    expected = sum(u.num_samples * w for u, w in zip(updates, before, strict=True)) / 8
    np.testing.assert_allclose(result[0], expected, rtol=1e-5, atol=1e-6)
    for update, original in zip(updates, before, strict=True):
        np.testing.assert_array_equal(update.weights[0], original)
    assert not np.shares_memory(result[0], updates[0].weights[0])


def test_fedavg_builds_the_mean_in_a_handed_over_update() -> None:
    updates = _large_updates(handed_over=True)
    copies = [ClientUpdate(u.worker, u.num_samples, [u.weights[0].copy()]) for u in updates]
    expected = get_aggregation("FedAvg").aggregate(copies)
    result = get_aggregation("FedAvg").aggregate(updates)
    # No fresh model allocated: the first update's memory holds the mean, bit for bit the
    # same as the allocating path.
    assert np.shares_memory(result[0], updates[0].weights[0])
    np.testing.assert_array_equal(result[0], expected[0])


def test_handed_over_updates_that_share_memory_are_not_overwritten() -> None:
    shared = np.arange(8, dtype=np.float32)
    updates = [ClientUpdate("a", 1, [shared], True), ClientUpdate("b", 1, [shared[::-1]], True)]
    result = get_aggregation("FedAvg").aggregate(updates)
    np.testing.assert_allclose(result[0], np.full(8, 3.5))
    np.testing.assert_array_equal(shared, np.arange(8))
