"""GlobalManager: the cloud side of Sedna. Informers and one work queue; a policy per job kind
(``gm.kinds``) plans workers and derives status; upstream messages from LCs are recorded and
written to status by one writer; leader election, ``/metrics`` and ``/healthz``.

Other packages (the ``sedna`` command, benchmarks) use only the names below.
"""

from gm.app import GMApp, api_client_for
from gm.settings import GMSettings

__all__ = ["GMApp", "GMSettings", "api_client_for"]
