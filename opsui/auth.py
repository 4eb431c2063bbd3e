"""Who may see the page: whoever holds the API server's bearer token.

A program sends ``Authorization: Bearer TOKEN``. A browser cannot, so it logs in once with the
token (the login form, or ``?token=`` in a link) and gets a session cookie: ``HttpOnly`` (no
script reads it), ``SameSite=Strict`` (no other site's page sends it), ``Path=/``. The cookie is
an HMAC of the token, not the token: it opens this page, not the API.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

COOKIE = "sedna_ops_session"
_LABEL = b"sedna ops page session v1"


class Auth:
    """Checks a request's bearer header or session cookie against the token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the ops page needs a token")
        self._token = token.encode()
        self._session = hmac.new(self._token, _LABEL, hashlib.sha256).hexdigest()

    def token_ok(self, token: str) -> bool:
        """Whether ``token`` is the token (constant time)."""
        return hmac.compare_digest(token.strip().encode(), self._token)

    def allowed(self, headers: Mapping[str, str]) -> bool:
        """Whether the request's ``Authorization`` or session cookie is good."""
        scheme, _, credential = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and credential:
            return self.token_ok(credential)
        session = _cookie(headers.get("Cookie") or "", COOKIE)
        return session is not None and hmac.compare_digest(session.encode(), self._session.encode())

    def set_cookie(self, secure: bool = False) -> str:
        """The ``Set-Cookie`` value of a logged-in browser."""
        flags = "; Secure" if secure else ""
        return f"{COOKIE}={self._session}; Path=/; HttpOnly; SameSite=Strict{flags}"

    @staticmethod
    def clear_cookie() -> str:
        """The ``Set-Cookie`` value that logs a browser out."""
        return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"


def _cookie(header: str, name: str) -> str | None:
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None
