"""The operations page of the all-in-one mode: jobs, their conditions, rounds and knowledge as
plots, and a worker's log, read from the API server and the components' ``/metrics``."""

from opsui.server import OpsUI
from opsui.settings import InvalidOpsSettings, OpsSettings

__all__ = ["InvalidOpsSettings", "OpsSettings", "OpsUI"]
