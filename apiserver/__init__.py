"""The embedded Kubernetes-compatible API server, used when no cluster is given.

SQLite-backed storage, discovery, OpenAPI v3, CRUD, patches, status subresource, watches,
Table output, TLS and bearer-token authentication.
"""

from apiserver.errors import ApiError
from apiserver.server import ApiServer, ApiServerError

__all__ = ["ApiError", "ApiServer", "ApiServerError"]
