"""Exception types of the worker library.

Every error a user's script can meet derives from :class:`SednaError`; the ones caused by bad
input also derive from :class:`ValueError`, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class SednaError(Exception):
    """Base class of the worker library's errors."""


class ConfigError(SednaError, ValueError):
    """A setting or algorithm parameter is missing, malformed or out of range."""


class UnknownAlgorithmError(ConfigError):
    """No algorithm is registered under the requested name."""


class DataSourceError(SednaError, ValueError):
    """A dataset index file cannot be parsed."""


class InvalidInputError(SednaError, ValueError):
    """An algorithm was given input of the wrong shape or type (e.g. a probability vector)."""


class CloudUnavailableError(SednaError):
    """The cloud model service could not answer (down, slow, or returned an error)."""


class UnsupportedError(ConfigError):
    """Something upstream Sedna offers that this implementation deliberately does not."""
