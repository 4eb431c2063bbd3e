"""Shared pytest fixtures: real Mosquitto, Redis and the embedded API server."""

from tests.services import *  # noqa: F403
