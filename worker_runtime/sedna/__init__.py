"""The Sedna worker library: what training, evaluation and inference scripts import.

Its public modules and names are upstream Sedna's (kubeedge/sedna ``lib/``); the differences
are listed in docs/compatibility.md. It imports nothing of the control plane; workers reach
their LocalController over HTTP (``LC_SERVER``) and their federated peers over gRPC.
"""

from sedna import _unsupported

__version__ = "0.1.0"

_unsupported.install()
