"""LocalController: the node side of Sedna (process runtime, report server, datasets, triggers).

Other packages use only the names below.
"""

from lc.datasets import DatasetMonitor, DatasetObservation
from lc.errors import InvalidReport, InvalidSettings, InvalidTrigger, InvalidWorkerSpec, LCError
from lc.metrics import LCMetrics
from lc.report_server import ReportServer
from lc.reports import WorkerReport, parse_report
from lc.runtime import ProcessRuntime, WorkerPhase, WorkerStatus
from lc.settings import LCSettings, add_arguments, from_args
from lc.triggers import Trigger, TriggerResult, evaluate, parse_trigger
from lc.workerspec import WorkerSpec, parse_worker_spec

__all__ = [
    "DatasetMonitor",
    "DatasetObservation",
    "InvalidReport",
    "InvalidSettings",
    "InvalidTrigger",
    "InvalidWorkerSpec",
    "LCError",
    "LCMetrics",
    "LCSettings",
    "ProcessRuntime",
    "ReportServer",
    "Trigger",
    "TriggerResult",
    "WorkerPhase",
    "WorkerReport",
    "WorkerSpec",
    "WorkerStatus",
    "add_arguments",
    "evaluate",
    "from_args",
    "parse_report",
    "parse_trigger",
    "parse_worker_spec",
]
