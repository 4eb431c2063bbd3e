"""Shared pytest fixtures: real Mosquitto, Redis and the embedded API server."""
