"""Aggregators on loopback for the federated learning tests."""

from __future__ import annotations

from typing import Any

from sedna.core.federated_learning import AggregatorSettings


def loopback_settings(job: str, token: str, **overrides: Any) -> AggregatorSettings:
    """An aggregator on a free loopback port: 2 participants, 3 rounds, a 60 s round timeout and
    no exit grace, unless ``overrides`` say otherwise."""
    values: dict[str, Any] = {
        "job": job,
        "token": token,
        "bind_host": "127.0.0.1",
        "bind_port": 0,
        "participants": 2,
        "exit_round": 3,
        "round_timeout_seconds": 60,
        "exit_grace_seconds": 0,
        **overrides,
    }
    return AggregatorSettings(**values)
