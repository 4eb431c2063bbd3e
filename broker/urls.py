"""Broker addresses given as URLs (``mqtt://user:password@host:port``)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from broker.client import BusSettings

_SCHEMES = {"mqtt": 1883, "tcp": 1883}


def bus_settings_from_url(
    url: str, username: str | None = None, password: str | None = None
) -> BusSettings:
    """Bus settings for ``url``; explicit credentials win over those in the URL."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"broker URL {url!r} must start with mqtt:// or tcp://")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host")
    return BusSettings(
        host=parts.hostname,
        port=parts.port or _SCHEMES[parts.scheme],
        username=username or (unquote(parts.username) if parts.username else None),
        password=password or (unquote(parts.password) if parts.password else None),
    )
