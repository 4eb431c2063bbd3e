"""One status subresource merge-PATCH, sent on the API client's own connection pool.

The generated ``CustomObjectsApi.patch_namespaced_custom_object_status`` validates its arguments
(pydantic ``validate_call``), serializes and sanitizes the body and deserializes the answer on
every call: at a few hundred status writes a second that is most of the GM's cost of a write.
This sends the same request (``application/merge-patch+json``, the same headers, auth, TLS and
proxy settings: the client's urllib3 pool and configuration) and decodes the answer with
``json``. A non-2xx answer raises ``ApiException`` as the generated client does (409: someone
wrote first).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apis import KindInfo

__all__ = ["StatusPatch"]


class StatusPatch:
    """``patch(info, namespace, name, body)``: merge-PATCH ``body`` into one object's status."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client
        self._pool = api_client.rest_client.pool_manager
        self._host = api_client.configuration.host.rstrip("/")

    def __call__(
        self, info: KindInfo, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The object as written (raises ``ApiException`` on an error answer)."""
        configuration = self._api_client.configuration
        headers = {
            **self._api_client.default_headers,
            "Accept": "application/json",
            "Content-Type": "application/merge-patch+json",
        }
        for auth in configuration.auth_settings().values():  # a refreshed token, if it expires
            headers[auth["key"]] = auth["value"]
        path = (
            f"/apis/{info.group}/{info.version}/namespaces/{quote(namespace, safe='')}"
            f"/{info.plural}/{quote(name, safe='')}/status"
        )
        answer = self._pool.request(
            "PATCH", self._host + path, body=json.dumps(body).encode(), headers=headers
        )
        if not 200 <= answer.status < 300:
            raise ApiException(http_resp=answer)
        return json.loads(answer.data)
