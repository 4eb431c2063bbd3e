"""Errors of the federated weight exchange, independent of the transport.

The aggregator raises the ``Refused*`` kinds; the gRPC service maps each to one status code in
one place (``service.py``) and the client maps the codes back.
"""

from __future__ import annotations

from sedna.common.errors import SednaError


class FederatedError(SednaError):
    """Base class of federated learning errors."""


class PushRefused(FederatedError):
    """The aggregator refused an update; nothing of it was kept."""


class NotAuthenticated(PushRefused):
    """The call carried no job token or a wrong one (gRPC ``UNAUTHENTICATED``)."""


class RoundNotOpen(PushRefused):
    """The update is for a round that is not open, or relative to a stale global model
    (gRPC ``FAILED_PRECONDITION``): pull the latest global model and rejoin."""


class InvalidUpdate(PushRefused, ValueError):
    """The update does not fit the model or its own header (gRPC ``INVALID_ARGUMENT``)."""


class JobFailed(FederatedError):
    """The federated job failed on the aggregator (gRPC ``ABORTED``)."""


class AggregatorUnavailable(FederatedError):
    """The aggregator could not be reached within the retry budget."""


class RoundTimeout(FederatedError):
    """The global model of a round did not arrive within the allowed wait."""
