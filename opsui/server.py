"""The ops page's HTTP server: the page, its script and style, login and logout.

Routes (every one needs the token, as a bearer header or the session cookie, except
``POST /login``; anything else gets 401 and the login form):
``GET /`` (``?job=plural/namespace/name`` shows a job, ``&worker=W`` its log, ``&tail=N`` lines;
``?token=`` logs a browser in and redirects to the same URL without it), ``GET /static/ops.js``,
``GET /static/ops.css``, ``POST /login`` (form field ``token``), ``POST /logout``.
Bad parameters get a 400 or 404 page naming the parameter.
"""

from __future__ import annotations

import importlib.resources
import logging
import threading
import urllib.parse
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

from kubernetes import client
from urllib3.exceptions import HTTPError

from apis import InvalidSettings
from gm.app import api_client_for
from opsui import page, series
from opsui.auth import Auth
from opsui.jobs import JobReader, JobRef
from opsui.scrape import Sampler
from opsui.settings import OpsSettings
from sedna_cli.joblogs import LogsError, worker_log

log = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"
STATIC = {"/static/ops.js": "text/javascript", "/static/ops.css": "text/css"}
MAX_FORM = 4096
DEFAULT_TAIL = 200
MAX_TAIL = 5000
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Reply(NamedTuple):
    """What a request gets."""

    status: HTTPStatus
    content_type: str
    body: bytes
    headers: Mapping[str, str] = {}


class PageError(Exception):
    """A request the page refuses, with the status and a message naming what is wrong."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def kubeconfig_token(api_client: client.ApiClient) -> str | None:
    """The bearer token the API client sends (a kubeconfig's ``user.token``)."""
    keys = api_client.configuration.api_key
    value = keys.get("BearerToken") or keys.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _static(path: str) -> bytes:
    name = path.rsplit("/", 1)[1]
    return importlib.resources.files("opsui").joinpath("static", name).read_bytes()


def _safe_next(value: str) -> str:
    """A same-site path to go back to after logging in (else ``/``)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


class OpsUI:
    """The ops page: sampler of the metrics endpoints, API reader, HTTP server."""

    def __init__(self, settings: OpsSettings) -> None:
        self.settings = settings
        self.api_client = api_client_for(str(settings.kubeconfig) if settings.kubeconfig else None)
        token = (
            settings.token.get_secret_value()
            if settings.token is not None
            else kubeconfig_token(self.api_client)
        )
        if not token:
            raise InvalidSettings(
                "invalid ops page settings: no token to ask for: give --token (or "
                "SEDNA_OPS_TOKEN) or a --kubeconfig whose user has a token"
            )
        self.auth = Auth(token)
        self.jobs = JobReader(self.api_client)
        self.sampler = Sampler(
            settings.targets,
            series.HISTORY,
            interval=settings.interval,
            points=settings.history,
        )
        self._server = ThreadingHTTPServer((settings.host, settings.port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where the page is."""
        return f"http://{self.settings.host}:{self.port}/"

    def start(self) -> None:
        """Start sampling and serving in background threads."""
        self.sampler.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="opsui-server",
            daemon=True,
        )
        self._thread.start()
        log.info("ops page listening", extra={"url": self.url})

    def stop(self) -> None:
        """Stop serving and sampling."""
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        self.sampler.stop()

    # -- requests ----------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Reply:
        """Answer one request."""
        parts = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if method == "POST" and parts.path == "/login":
            return self._login(body)
        if method == "GET" and parts.path == "/" and "token" in query:
            return self._token_link(query)
        if not self.auth.allowed(headers):
            return self._unauthorized("", target if method == "GET" else "/")
        if method == "POST" and parts.path == "/logout":
            return Reply(
                HTTPStatus.SEE_OTHER,
                HTML,
                b"",
                {"Location": "/", "Set-Cookie": Auth.clear_cookie()},
            )
        if method == "GET" and parts.path in STATIC:
            return Reply(HTTPStatus.OK, STATIC[parts.path], _static(parts.path))
        if method == "GET" and parts.path == "/":
            return self._page(query)
        if parts.path in ("/", "/login", "/logout", *STATIC):
            raise PageError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {parts.path}")
        raise PageError(HTTPStatus.NOT_FOUND, f"no page {parts.path}")

    def _unauthorized(self, message: str, next_url: str) -> Reply:
        return Reply(
            HTTPStatus.UNAUTHORIZED,
            HTML,
            page.login_page(message, _safe_next(next_url)).encode(),
            {"WWW-Authenticate": 'Bearer realm="sedna-ops"'},
        )

    def _logged_in(self, next_url: str) -> Reply:
        return Reply(
            HTTPStatus.SEE_OTHER,
            HTML,
            b"",
            {"Location": _safe_next(next_url), "Set-Cookie": self.auth.set_cookie()},
        )

    def _login(self, body: bytes) -> Reply:
        if len(body) > MAX_FORM:
            raise PageError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"login form over {MAX_FORM} B")
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        next_url = form.get("next", "/")
        if not form.get("token"):
            return self._unauthorized("Enter the API token.", next_url)
        if not self.auth.token_ok(form["token"]):
            return self._unauthorized("That is not the API token.", next_url)
        return self._logged_in(next_url)

    def _token_link(self, query: dict[str, str]) -> Reply:
        rest = {k: v for k, v in query.items() if k != "token"}
        next_url = "/" + ("?" + urllib.parse.urlencode(rest) if rest else "")
        if not self.auth.token_ok(query["token"]):
            return self._unauthorized("That is not the API token.", next_url)
        return self._logged_in(next_url)

    def _page(self, query: dict[str, str]) -> Reply:
        try:
            jobs = self.jobs.jobs()
        except (client.ApiException, HTTPError, OSError) as exc:
            raise PageError(HTTPStatus.SERVICE_UNAVAILABLE, f"the API server: {exc}") from None
        status, problems, selected, log_view = HTTPStatus.OK, [], None, None
        if query.get("job"):
            try:
                ref = JobRef.parse(query["job"])
            except ValueError as exc:
                status = HTTPStatus.BAD_REQUEST
                problems.append(str(exc))
            else:
                selected = next((j for j in jobs if j.ref == ref), None)
                if selected is None:
                    status = HTTPStatus.NOT_FOUND
                    problems.append(f"job: no job {ref.key}")
        worker = query.get("worker")
        if selected is not None and worker:
            if worker in {w.name for w in selected.workers}:
                log_view = self._log(selected.ref.namespace, worker, query.get("tail"))
            else:
                status = HTTPStatus.NOT_FOUND
                problems.append(f"worker: {selected.ref.name} has no {worker}")
        content = page.content(
            page.rows(jobs, self.sampler),
            selected,
            self.sampler,
            log_view,
            problems,
        )
        return Reply(status, HTML, page.document(content, refresh=self.settings.interval).encode())

    def _log(self, namespace: str, worker: str, tail: str | None) -> page.LogView:
        """The worker's last lines through the API server's log route (``pods/<worker>/log``,
        read as ``sedna logs`` reads it)."""
        lines = DEFAULT_TAIL
        if tail:
            if not tail.isdigit() or not 1 <= int(tail) <= MAX_TAIL:
                return page.LogView(worker=worker, error=f"tail: 1 to {MAX_TAIL} lines")
            lines = int(tail)
        try:
            text = "\n".join(worker_log(self.api_client, namespace, worker, tail=lines))
        except LogsError as exc:
            return page.LogView(worker=worker, error=str(exc))
        except (HTTPError, OSError) as exc:
            return page.LogView(worker=worker, error=f"the API server: {exc}")
        return page.LogView(worker=worker, text=text)


def _make_handler(ops: OpsUI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            try:
                body = self._body() if method in ("POST", "PUT") else b""
                reply = ops.handle(method, self.path, self.headers, body)
            except PageError as exc:
                reply = _error_reply(exc, ops.settings.interval)
            except Exception:
                log.exception("ops page request failed", extra={"path": self.path})
                reply = _error_reply(
                    PageError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"),
                    ops.settings.interval,
                )
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in {**SECURITY_HEADERS, **reply.headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def _body(self) -> bytes:
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                raise PageError(HTTPStatus.LENGTH_REQUIRED, "Content-Length: a number")
            if int(length) > MAX_FORM:
                self.close_connection = True
                raise PageError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_FORM} B")
            return self.rfile.read(int(length))

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def _error_reply(exc: PageError, refresh: float) -> Reply:
    html = page.document(page.error_section(str(exc)), refresh=refresh)
    return Reply(exc.status, HTML, html.encode())
