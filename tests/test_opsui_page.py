"""Issue 13 item 6: the ops page of ``sedna up``, loaded in headless Chromium while real jobs run.

One stack for the module (each part in its own process, as ``sedna up`` runs them) runs a
joint inference service, a federated job (the digits example) and a lifelong job (the digits
example, through its first round). Chromium logs in with ``?token=`` (the session cookie), and
the tests read what the page shows from its DOM.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sedna_cli.stack import Stack, StackOptions
from tests.e2e import Cluster, run_joint_inference
from tests.services import wait_for
from tests.test_e2e_federated import EDGES, EXAMPLE, _job
from tests.test_e2e_lifelong import SEEN, wait_round_done

pytestmark = pytest.mark.slow

LL_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lifelong_learning"
sys.path.insert(0, str(LL_EXAMPLE))

from job import NAME as LL_NAME  # noqa: E402
from job import Workspace, manifests  # noqa: E402

CHROMIUM = "chromium"
INSTALL = "sudo apt-get install -y chromium (or: bash scripts/ensure-tools.sh)"
FL_ROUNDS = 12
JI_NAME = "ji-ops"
SCREENSHOT_ENV = "SEDNA_OPS_SCREENSHOT"


# -- the browser -----------------------------------------------------------------------------


def chromium() -> str:
    """Chromium's path; fails (never skips) when it is missing, naming the install command."""
    found = shutil.which(CHROMIUM)
    if found is None:
        pytest.fail(f"chromium is missing: {INSTALL}")
    return found


def browse(url: str, profile: Path, *args: str, budget_ms: int = 1500) -> str:
    """Load ``url`` in headless Chromium (a fresh profile, so no cookie from before); the
    DOM after ``budget_ms`` of virtual time (scripts included), unless ``args`` say otherwise."""
    command = [
        chromium(),
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        *(["--no-sandbox"] if os.geteuid() == 0 else []),
        *(args or ["--dump-dom"]),
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Node:
    """An element of a parsed page: tag, attributes, children, text."""

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        """All text inside, whitespace collapsed."""
        out: list[str] = []

        def walk(node: Node) -> None:
            out.extend(node.parts)
            for child in node.children:
                walk(child)

        walk(self)
        return " ".join("".join(out).split())

    def all(self, tag: str, **attrs: str) -> list[Node]:
        """Descendants with ``tag`` (``*`` any) whose attributes include ``attrs``."""
        found = []
        for child in self.children:
            if (tag in ("*", child.tag)) and all(
                child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()
            ):
                found.append(child)
            found.extend(child.all(tag, **attrs))
        return found

    def one(self, tag: str, **attrs: str) -> Node:
        """The only descendant that matches."""
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}> in the page"
        return found[0]


_VOID = {"meta", "link", "input", "br", "img", "hr", "source", "col", "wbr", "area"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse(dom: str) -> Node:
    """The page's element tree."""
    builder = _Builder()
    builder.feed(dom)
    return builder.root


# -- the stack and its jobs -----------------------------------------------------------------


class Ops:
    """The running stack, its jobs, and the ops page's address and token."""

    def __init__(self, cluster: Cluster, tmp: Path) -> None:
        self.cluster = cluster
        self.tmp = tmp
        endpoints = json.loads(cluster.stack.endpoints_file.read_text())
        self.url: str = endpoints["ops"]["url"]
        self.token = _kubeconfig_token(cluster.stack.kubeconfig)
        self._profiles = 0

    def browse(self, query: dict[str, str] | None = None, *args: str, budget_ms: int = 1500) -> str:
        """The page for ``query`` as Chromium shows it, logged in with ``?token=``."""
        self._profiles += 1
        login = {"token": self.token, **(query or {})}
        url = f"{self.url}?{urllib.parse.urlencode(login)}"
        return browse(url, self.tmp / f"profile{self._profiles}", *args, budget_ms=budget_ms)

    def page(self, **query: str) -> Node:
        """The page's DOM for ``query``."""
        return parse(self.browse(query))


def _kubeconfig_token(path: Path) -> str:
    import yaml

    config = yaml.safe_load(path.read_text())
    return config["users"][0]["user"]["token"]


def _digits_data(out: Path) -> Path:
    """The federated example's data (its ``prepare_data.prepare``), written to ``out``."""
    spec = importlib.util.spec_from_file_location("fl_prepare_data", EXAMPLE / "prepare_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.prepare(out, nodes=len(EDGES))
    return out


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    """``sedna up`` with a joint inference service, a finished federated job and a lifelong
    job after its first round (the ops page samples every second)."""
    chromium()  # fail before starting anything when the browser is missing
    tmp = tmp_path_factory.mktemp("ops")
    options = StackOptions(
        data_dir=tmp / "sedna", nodes=["cloud0", *EDGES], processes="all", ops_interval=1.0
    )
    stack = Stack(options)
    stack.start()
    try:
        cluster = Cluster(stack, tmp / "kube-cache")
        run_joint_inference(cluster, JI_NAME)
        work = Workspace(tmp / "digits-ll")
        work.prepare()
        cluster.apply(manifests(work, check_period=1))
        work.append(list(SEEN))  # 800 rows: the train trigger (> 300) fires
        data = _digits_data(tmp / "digits")
        cluster.apply(_job(data, tmp / "models", rounds=FL_ROUNDS))
        wait_for(
            lambda: cluster.status("federatedlearningjobs", "digits").get("phase") == "Succeeded",
            180,
            "the federated job to succeed",
        )
        wait_round_done(cluster, 1)
        yield Ops(cluster, tmp)
    finally:
        stack.stop()


def _rows(page: Node) -> dict[str, dict[str, str]]:
    table = page.one("table", id="jobs")
    return {
        row.attrs["data-job"]: {
            cell.attrs["data-col"]: cell.text for cell in row.all("td") if "data-col" in cell.attrs
        }
        for row in table.all("tr")
        if "data-job" in row.attrs
    }


def _plot(page: Node, figure: str) -> Node:
    """The plot of the figure ``figure``."""
    return page.one("figure", id=figure).one("svg", **{"class": "plot"})


def _points(svg: Node) -> list[str]:
    """The points' titles (``label HH:MM:SS: value``), in drawing order."""
    return [circle.one("title").text for circle in svg.all("circle")]


# -- tests -------------------------------------------------------------------------------------


def _expected_rows(cluster: Cluster) -> dict[str, dict[str, str]]:
    """The jobs table's rows as the API server's objects say they should read."""
    fl = cluster.status("federatedlearningjobs", "digits")
    ll = cluster.status("lifelonglearningjobs", LL_NAME)
    return {
        f"jointinferenceservices/default/{JI_NAME}": {
            "phase": "Running",
            "stage": "\u2014",
            "round": "\u2014",
            "workers": "2 active, 0 failed",
        },
        "federatedlearningjobs/default/digits": {
            "phase": "Succeeded",
            "stage": "\u2014",
            "round": str(fl["currentRound"]),
            "workers": f"{fl['active']} active, {fl['failed']} failed",
        },
        f"lifelonglearningjobs/default/{LL_NAME}": {
            "phase": ll["state"],
            "stage": ll["stage"],
            "round": str(ll["round"]),
            "workers": f"{ll['active']} active, {ll['failed']} failed",
        },
    }


def test_the_page_lists_the_jobs_with_phase_stage_round_and_workers(ops: Ops) -> None:
    # The GM's series follow the API objects within a scrape or two: look again until then.
    deadline = time.monotonic() + 90
    while True:
        expected = _expected_rows(ops.cluster)
        rows = _rows(ops.page())
        shown = {key: rows.get(key) for key in expected}
        if shown == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert shown == expected
    assert shown["federatedlearningjobs/default/digits"]["round"] == str(FL_ROUNDS)
    assert shown[f"lifelonglearningjobs/default/{LL_NAME}"]["round"] == "1"


def test_a_federated_job_shows_its_rounds_and_conditions_as_plots(ops: Ops) -> None:
    status = ops.cluster.status("federatedlearningjobs", "digits")
    page = ops.page(job="federatedlearningjobs/default/digits")
    rounds = _plot(page, "rounds")
    points = _points(rounds)
    round_points = [p for p in points if p.startswith("round ")]
    assert int(rounds.attrs["data-points"]) == len(points) >= 2
    # The history is the GM's series sampled by the page: it ends at the final round.
    assert round_points[-1].endswith(f": {FL_ROUNDS}"), round_points
    values = [int(p.rsplit(": ", 1)[1]) for p in round_points]
    assert values == sorted(values)
    conditions = _plot(page, "conditions")
    # One point per condition in the job's history, the last being where the job is.
    assert int(conditions.attrs["data-points"]) == len(status["conditions"])
    assert _points(conditions)[-1].endswith(f": {status['conditions'][-1]['type']}")
    nodes = page.one("figure", id="rounds").one("table")
    assert {row.one("th").text for row in nodes.all("tr")[1:]} == set(EDGES)


def test_a_lifelong_job_shows_the_knowledge_base_growing(ops: Ops) -> None:
    page = ops.page(job=f"lifelonglearningjobs/default/{LL_NAME}")
    knowledge = _plot(page, "knowledge")
    lines = {g.attrs["data-label"]: _points(g) for g in knowledge.all("g", **{"class": "line"})}
    for label in ("tasks in the knowledge base", "task models in the job's status"):
        # Sampled from the knowledge base's sedna_kb_tasks and the GM's known tasks: none
        # while the first round trained, then the two tasks it learnt.
        values = [int(p.rsplit(": ", 1)[1]) for p in lines[label]]
        assert values[0] == 0 and values[-1] == 2, (label, values)
        assert values == sorted(values)
    conditions = _points(_plot(page, "conditions"))
    assert any("Deploy/" in p for p in conditions), conditions
    assert page.one("svg", **{"aria-labelledby": knowledge.attrs["aria-labelledby"]})


def test_a_worker_log_is_read_through_the_control_plane(ops: Ops) -> None:
    # The aggregator ran on cloud0 and has ended: its last line is in its log.
    page = ops.page(job="federatedlearningjobs/default/digits", worker="digits-aggregation")
    section = page.one("section", id="log")
    assert section.one("h3").text == "Log of digits-aggregation"
    assert f"aggregation finished at round {FL_ROUNDS}" in section.one("pre").text
    # The lifelong job's inference worker runs on edge0 and prints a summary per pass.
    worker = f"{LL_NAME}-inference"
    page = ops.page(job=f"lifelonglearningjobs/default/{LL_NAME}", worker=worker, tail="3")
    lines = page.one("pre", id="log-text").text
    assert '"holdout"' in lines and '"arrivals"' in lines
    row = page.one("table", id="workers").one("tr", data_worker=worker)
    assert row.attrs.get("aria-current") == "true"


def test_the_page_refreshes_itself(ops: Ops) -> None:
    page = parse(ops.browse({}, budget_ms=3500))
    assert int(page.one("body").attrs["data-refreshes"]) >= 2
    assert _rows(page)  # the swapped-in content still holds the jobs


def test_a_screenshot_of_the_page(ops: Ops) -> None:
    """A PNG of a job's page as a browser renders it (``SEDNA_OPS_SCREENSHOT=path`` keeps it)."""
    target = Path(os.environ.get(SCREENSHOT_ENV) or ops.tmp / "ops-page.png").resolve()
    ops.browse(
        {"job": f"lifelonglearningjobs/default/{LL_NAME}", "worker": f"{LL_NAME}-inference"},
        f"--screenshot={target}",
        "--window-size=1280,1500",
        "--hide-scrollbars",
    )
    head = target.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1280, 1500)


# -- the token -------------------------------------------------------------------------------


def _request(
    ops: Ops, path: str, headers: dict[str, str] | None = None, method: str = "GET", body: str = ""
) -> tuple[int, dict[str, str], str]:
    parts = urllib.parse.urlsplit(ops.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=body.encode() or None, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/", "/static/ops.js", "/static/ops.css", "/nothing", "/?job=x"])
def test_no_token_gets_401_and_the_login_form(ops: Ops, path: str) -> None:
    status, headers, body = _request(ops, path)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert '<input id="token" name="token" type="password"' in body
    assert JI_NAME not in body


def test_a_wrong_token_gets_401_everywhere(ops: Ops) -> None:
    wrong = ops.token[:-1] + ("x" if ops.token[-1] != "x" else "y")
    for headers, path in (
        ({"Authorization": f"Bearer {wrong}"}, "/"),
        ({"Authorization": f"Basic {ops.token}"}, "/"),
        ({}, f"/?token={wrong}"),
        ({"Cookie": f"sedna_ops_session={ops.token}"}, "/"),  # the token is not the session
        ({"Cookie": "sedna_ops_session=" + "0" * 64}, "/"),
    ):
        status, _, body = _request(ops, path, headers)
        assert status == 401, (headers, path)
        assert JI_NAME not in body
    status, _, body = _request(
        ops,
        "/login",
        {"Content-Type": "application/x-www-form-urlencoded"},
        "POST",
        urllib.parse.urlencode({"token": wrong, "next": "/"}),
    )
    assert status == 401 and "That is not the API token." in body


def test_the_token_opens_the_page_by_header_form_or_link(ops: Ops) -> None:
    status, _, body = _request(ops, "/", {"Authorization": f"Bearer {ops.token}"})
    assert status == 200 and f"?job=jointinferenceservices%2Fdefault%2F{JI_NAME}" in body
    # A link with ?token= sets the session cookie and redirects to the same page without it.
    status, headers, _ = _request(
        ops, f"/?job=federatedlearningjobs/default/digits&token={ops.token}"
    )
    assert status == 303
    assert headers["Location"] == "/?job=federatedlearningjobs%2Fdefault%2Fdigits"
    cookie = headers["Set-Cookie"]
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    session = cookie.split(";", 1)[0]
    assert ops.token not in session
    status, _, body = _request(ops, headers["Location"], {"Cookie": session})
    assert status == 200 and 'id="rounds"' in body
    # The login form does the same, and goes back where it was asked to (same site only).
    form = urllib.parse.urlencode({"token": ops.token, "next": "//elsewhere.example/"})
    status, headers, _ = _request(
        ops, "/login", {"Content-Type": "application/x-www-form-urlencoded"}, "POST", form
    )
    assert status == 303 and headers["Location"] == "/"
    status, headers, _ = _request(ops, "/logout", {"Cookie": session}, "POST")
    assert status == 303 and "Max-Age=0" in headers["Set-Cookie"]


def test_bad_parameters_name_what_is_wrong(ops: Ops) -> None:
    auth = {"Authorization": f"Bearer {ops.token}"}
    status, _, body = _request(ops, "/?job=digits", auth)
    assert status == 400 and "expected plural/namespace/name" in body
    status, _, body = _request(ops, "/?job=pods/default/digits", auth)
    assert status == 400 and "&#x27;pods&#x27; is not a job kind" in body
    status, _, body = _request(ops, "/?job=federatedlearningjobs/default/nope", auth)
    assert status == 404 and "no job federatedlearningjobs/default/nope" in body
    job = "federatedlearningjobs/default/digits"
    status, _, body = _request(ops, f"/?job={job}&worker=nobody", auth)
    assert status == 404 and "digits has no nobody" in body
    status, _, body = _request(ops, f"/?job={job}&worker=digits-aggregation&tail=0", auth)
    assert status == 200 and "tail: 1 to 5000 lines" in body


def test_sedna_up_gives_the_page_address(ops: Ops) -> None:
    endpoints: dict[str, Any] = json.loads(ops.cluster.stack.endpoints_file.read_text())
    assert endpoints["ops"]["url"].startswith("http://127.0.0.1:")
    _, _, body = _request(ops, "/", {"Authorization": f"Bearer {ops.token}"})
    components = parse(body).one("table", id="targets")
    names = {row.one("th").text for row in components.all("tr")[1:]}
    assert names == {"gm", "kb", *(f"lc/{n}" for n in ("cloud0", *EDGES))}
    assert "failed" not in components.text
