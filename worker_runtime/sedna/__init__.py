"""The Sedna worker library: what training, evaluation and inference scripts import.

It imports nothing of the control plane; workers reach their LocalController over HTTP
(``LC_SERVER``) and their federated peers over gRPC.
"""

__version__ = "0.1.0"
