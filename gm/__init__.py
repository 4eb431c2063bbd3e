"""GlobalManager: the cloud side of Sedna. Informers and one work queue; a policy per job kind
(``gm.kinds``) plans workers and derives status; upstream messages from LCs are applied in
batches (``gm.upstream``: decoded, checked, coalesced per object into ``gm.records``, committed
with their ids' marks in one Redis transaction) and written to status by one writer
(``gm.statuswriter``, one write per batch and object); leader election, ``/metrics`` and
``/healthz``. ``docs/contracts.md`` says how a message is applied once.

Other packages (the ``sedna`` command, benchmarks) use only the names below.
"""

from gm.app import GMApp, api_client_for
from gm.settings import GMSettings

__all__ = ["GMApp", "GMSettings", "api_client_for"]
