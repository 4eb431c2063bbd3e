"""LocalController: the node side of Sedna (process runtime, report server, datasets, triggers).

Other packages (the ``sedna`` command) use only the names below.
"""

from lc.agent import LocalController
from lc.errors import InvalidSettings
from lc.settings import LCSettings, add_arguments, from_args

__all__ = ["InvalidSettings", "LCSettings", "LocalController", "add_arguments", "from_args"]
