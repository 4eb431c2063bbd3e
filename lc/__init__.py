"""LocalController: the node side of Sedna (process runtime, report server, datasets, triggers).

Other packages (the ``sedna`` command) use only the names below.
"""

from lc.agent import LocalController
from lc.settings import LCSettings

__all__ = ["LCSettings", "LocalController"]
