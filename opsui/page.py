"""The page's HTML: the jobs table, one job's plots and workers, a worker's log.

Rendered on the server from the API server's objects (jobs, conditions, workers) and the
sampler's series (rounds, worker counts, knowledge base tasks). ``ops.js`` fetches the same URL
again every few seconds and swaps ``<main>``: one renderer, with or without script.
"""

from __future__ import annotations

import html
import time
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel

from opsui import series
from opsui.jobs import Job, condition_label, condition_time
from opsui.plots import Line, plot
from opsui.scrape import Sampler, TargetState

esc = html.escape
DASH = "\u2014"


class Row(BaseModel):
    """One line of the jobs table."""

    job: Job
    round: float | None
    active: float | None
    failed: float | None


class LogView(BaseModel):
    """A worker's log as the control plane's log route returned it, or why it could not."""

    worker: str
    text: str = ""
    error: str = ""


def rows(jobs: Sequence[Job], sampler: Sampler) -> list[Row]:
    """The jobs with their round and worker counts from the series."""
    out = []
    for job in jobs:
        ref, info = job.ref, job.ref.info
        where = {"namespace": ref.namespace, "name": ref.name}
        name = series.ROUND.get(info.canonical_kind)
        counts: dict[str, float] = {}
        for labels, value in sampler.values(series.JOB_WORKERS, where).items():
            found = dict(labels)
            if found.get("kind") in (info.kind, info.canonical_kind):
                counts[found.get("state", "")] = value
        out.append(
            Row(
                job=job,
                round=sampler.value(name, where) if name else None,
                active=counts.get("active"),
                failed=counts.get("failed"),
            )
        )
    return out


def _clock(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%H:%M:%S") if when else DASH


def _num(v: float | None) -> str:
    if v is None:
        return DASH
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _link(**query: str) -> str:
    return "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})


def _kind_label(job: Job) -> str:
    info = job.ref.info
    return f"{info.kind} ({info.group})" if info.legacy else info.kind


def jobs_table(table: Sequence[Row], selected: str | None) -> str:
    """The jobs as a table; each name links to the job's section."""
    head = "".join(
        f'<th scope="col">{h}</th>'
        for h in ("Kind", "Namespace", "Name", "Phase", "Stage", "Round", "Workers")
    )
    body = []
    for row in table:
        job, key = row.job, row.job.ref.key
        current = ' aria-current="true"' if key == selected else ""
        workers = DASH
        if row.active is not None or row.failed is not None:
            workers = f"{_num(row.active)} active, {_num(row.failed or 0)} failed"
        body.append(
            f'<tr data-job="{esc(key)}"{current}>'
            f"<td>{esc(_kind_label(job))}</td><td>{esc(job.ref.namespace)}</td>"
            f'<th scope="row"><a href="{esc(_link(job=key))}">{esc(job.ref.name)}</a></th>'
            f'<td data-col="phase">{esc(job.phase)}</td>'
            f'<td data-col="stage">{esc(job.stage or DASH)}</td>'
            f'<td data-col="round" class="num">{_num(row.round)}</td>'
            f'<td data-col="workers">{esc(workers)}</td></tr>'
        )
    if not body:
        body.append('<tr><td colspan="7">No jobs yet.</td></tr>')
    return (
        '<table id="jobs"><caption>Jobs in the API server, with their round and workers from '
        "the GM's series</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def targets_table(states: dict[str, TargetState]) -> str:
    """The components scraped and how their last scrape went."""
    body = []
    for name, state in sorted(states.items()):
        when = datetime.fromtimestamp(state.time, UTC).strftime("%H:%M:%S")
        result = f"{state.samples} samples" if state.ok else f"failed: {state.error}"
        body.append(
            f'<tr><th scope="row">{esc(name)}</th><td>{esc(state.url)}</td>'
            f"<td>{when}</td><td>{esc(result)}</td></tr>"
        )
    return (
        '<table id="targets"><caption>Metrics endpoints read by this page</caption>'
        '<thead><tr><th scope="col">Component</th><th scope="col">URL</th>'
        '<th scope="col">Last scrape (UTC)</th><th scope="col">Result</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def conditions_plot(job: Job) -> str:
    """The job's condition history: what it was in (a lane per condition) over time."""
    timed = [(when, condition_label(c)) for c in job.conditions if (when := condition_time(c))]
    names = list(dict.fromkeys(label for _, label in timed))
    points = [(when.timestamp(), float(names.index(label))) for when, label in timed]
    svg = plot(
        f"Conditions of {job.ref.name} over time",
        [Line("condition", points)],
        y_names=names or None,
        height=max(160, 26 * len(names) + 56),
        until=time.time(),
    )
    rows_html = "".join(
        f"<tr><td>{_clock(condition_time(c))}</td>"
        f"<td>{esc(c.stage.value if c.stage else DASH)}</td><td>{esc(c.type)}</td>"
        f"<td>{_num(c.round)}</td><td>{esc(c.reason or '')}</td>"
        f"<td>{esc(c.message or '')}</td></tr>"
        for c in job.conditions
    )
    table = (
        f"<details><summary>Conditions as a table ({len(job.conditions)})</summary>"
        '<table><thead><tr><th scope="col">Time (UTC)</th><th scope="col">Stage</th>'
        '<th scope="col">Type</th><th scope="col">Round</th><th scope="col">Reason</th>'
        f'<th scope="col">Message</th></tr></thead><tbody>{rows_html}</tbody></table></details>'
    )
    return _figure("conditions", "Conditions over time (API server)", svg + table)


def _figure(name: str, caption: str, content: str) -> str:
    return f'<figure id="{name}"><figcaption>{esc(caption)}</figcaption>{content}</figure>'


def rounds_plot(job: Job, sampler: Sampler) -> str:
    """Rounds over time (sampled from the round series); a federated job's samples per node."""
    kind = job.ref.info.canonical_kind
    where = {"namespace": job.ref.namespace, "name": job.ref.name}
    svg = plot(f"Rounds of {job.ref.name}", [_line(sampler, series.ROUND[kind], where, "round")])
    extra = ""
    samples = sampler.values(series.FEDERATED_NODE_SAMPLES, where)
    if samples:
        body = "".join(
            f'<tr><th scope="row">{esc(dict(labels).get("node", ""))}</th>'
            f'<td class="num">{_num(value)}</td></tr>'
            for labels, value in sorted(samples.items())
        )
        extra = (
            "<table><caption>Samples per node in its latest round</caption>"
            '<thead><tr><th scope="col">Node</th><th scope="col">Samples</th></tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    return _figure("rounds", "Rounds over time (sampled from /metrics)", svg + extra)


def knowledge_plot(job: Job, sampler: Sampler) -> str:
    """Tasks in the job's knowledge base over time: the knowledge base's ``sedna_kb_tasks`` and
    the job status's ``sedna_lifelong_known_tasks``. Before a series' first sample it is 0 at
    each sample of its source since the job was created: the knowledge base answered without
    an entry for the job, or the GM had the job without a knowledge base in its status."""
    ref = job.ref
    where = {"namespace": ref.namespace, "name": ref.name}
    since = job.created.timestamp() if job.created else 0.0
    round_name = series.ROUND[ref.info.canonical_kind]
    gm_times = [p.time for points in sampler.history(round_name, where).values() for p in points]
    lines = [
        _zero_before(
            _line(sampler, series.KB_TASKS, {"kb": ref_kb(job)}, "tasks in the knowledge base"),
            sampler.scrape_times(series.KB_INFO),
            since,
        ),
        _zero_before(
            _line(sampler, series.LIFELONG_KNOWN_TASKS, where, "task models in the job's status"),
            gm_times,
            since,
        ),
    ]
    svg = plot(f"Knowledge of {ref.name}: tasks over time", lines)
    return _figure("knowledge", "Lifelong learning knowledge (sampled from /metrics)", svg)


def _line(sampler: Sampler, name: str, labels: dict[str, str], label: str) -> Line:
    """The kept points of the one series ``name`` with ``labels``."""
    found = sampler.history(name, labels)
    return Line(label, [(p.time, p.value) for points in found.values() for p in points])


def _zero_before(line: Line, times: Sequence[float], since: float) -> Line:
    first = line.points[0][0] if line.points else float("inf")
    zeros = [(t, 0.0) for t in times if since <= t < first]
    return Line(line.label, [*zeros, *line.points])


def ref_kb(job: Job) -> str:
    """The knowledge base a lifelong job writes to (``namespace/name``)."""
    return f"{job.ref.namespace}/{job.ref.name}"


def workers_table(job: Job, log_worker: str | None) -> str:
    """The job's workers as the API server has them; each links to its log."""
    body = []
    for w in job.workers:
        current = ' aria-current="true"' if w.name == log_worker else ""
        link = _link(job=job.ref.key, worker=w.name)
        body.append(
            f'<tr data-worker="{esc(w.name)}"{current}>'
            f'<th scope="row">{esc(w.name)}</th><td>{esc(w.role or DASH)}</td>'
            f"<td>{esc(w.node_name or DASH)}</td><td>{esc(w.phase or DASH)}</td>"
            f"<td>{esc(w.status or DASH)}</td>"
            f'<td class="num">{_num(w.restart_count)}</td>'
            f'<td><a href="{esc(link)}#log">log<span class="sr"> of {esc(w.name)}</span></a>'
            "</td></tr>"
        )
    if not body:
        body.append('<tr><td colspan="7">No workers reported yet.</td></tr>')
    return (
        '<table id="workers"><caption>Workers</caption><thead><tr>'
        + "".join(
            f'<th scope="col">{h}</th>'
            for h in ("Worker", "Role", "Node", "Phase", "Status", "Restarts", "Log")
        )
        + f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def log_section(log: LogView) -> str:
    """A worker's log (its last lines)."""
    if log.error:
        content = f'<p class="error" role="status">Log not available: {esc(log.error)}</p>'
    else:
        content = f'<pre id="log-text" tabindex="0">{esc(log.text) or "(empty)"}</pre>'
    return (
        f'<section id="log" aria-labelledby="log-h"><h3 id="log-h">Log of '
        f"{esc(log.worker)}</h3>{content}</section>"
    )


def job_section(job: Job, sampler: Sampler, log: LogView | None) -> str:
    """One job: phase, plots, workers and the chosen worker's log."""
    kind = job.ref.info.canonical_kind
    parts = [
        f'<section id="job" aria-labelledby="job-h"><h2 id="job-h">{esc(_kind_label(job))} '
        f"{esc(job.ref.namespace)}/{esc(job.ref.name)}</h2>"
        f"<p>Phase <strong>{esc(job.phase)}</strong>"
        + (f", stage <strong>{esc(job.stage)}</strong>" if job.stage else "")
        + "</p>",
        '<div class="plots">',
        conditions_plot(job),
    ]
    if kind in series.ROUND:
        parts.append(rounds_plot(job, sampler))
    if kind == "LifelongLearningJob":
        parts.append(knowledge_plot(job, sampler))
    parts.append("</div>")
    parts.append(workers_table(job, log.worker if log else None))
    if log is not None:
        parts.append(log_section(log))
    parts.append("</section>")
    return "".join(parts)


def content(
    table: Sequence[Row],
    selected: Job | None,
    sampler: Sampler,
    log: LogView | None,
    problems: Sequence[str] = (),
) -> str:
    """What ``<main>`` holds: problems with the request, the jobs, the chosen job, the
    components read."""
    parts = [error_section(problem) for problem in problems]
    parts.append(
        '<section aria-labelledby="jobs-h"><h2 id="jobs-h">Jobs</h2>'
        + jobs_table(table, selected.ref.key if selected else None)
        + "</section>"
    )
    if selected is not None:
        parts.append(job_section(selected, sampler, log))
    else:
        parts.append('<p id="hint">Choose a job by its name to see its plots and workers.</p>')
    parts.append(
        '<section aria-labelledby="targets-h"><h2 id="targets-h">Components</h2>'
        + targets_table(sampler.states())
        + "</section>"
    )
    return "".join(parts)


def document(main: str, *, refresh: float, title: str = "Sedna operations") -> str:
    """The whole page around ``main``."""
    now = datetime.now(UTC).strftime("%H:%M:%S")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        '<link rel="stylesheet" href="/static/ops.css">'
        '<script src="/static/ops.js" defer></script></head>'
        f'<body data-refresh="{refresh:g}" data-refreshes="0">'
        '<header><h1><a href="/">Sedna operations</a></h1>'
        '<form method="post" action="/logout"><button type="submit">Log out</button></form>'
        '<p><label><input type="checkbox" id="auto-refresh" checked> '
        f"Refresh every {refresh:g} s</label></p></header>"
        f'<main><p id="updated">Updated {now} UTC</p>{main}</main></body></html>'
    )


def error_section(message: str) -> str:
    """A request the page cannot answer, saying why."""
    return f'<p class="error" role="alert">{esc(message)}</p>'


def login_page(message: str = "", next_url: str = "/") -> str:
    """The login form (the body of every 401 a browser gets)."""
    error = f'<p class="error" role="alert">{esc(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Sedna operations: log in</title><style>"
        "body{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "input,button{font:inherit;padding:.3rem .5rem}.error{color:#a00}"
        "</style></head><body><main><h1>Sedna operations</h1>"
        f"{error}"
        '<form method="post" action="/login">'
        '<p><label for="token">API token</label><br>'
        '<input id="token" name="token" type="password" autocomplete="current-password" '
        'required size="40"></p>'
        f'<input type="hidden" name="next" value="{esc(next_url)}">'
        '<p><button type="submit">Log in</button></p></form>'
        "<p>The token is the API server's, the one in <code>sedna up</code>'s kubeconfig: "
        "<code>kubectl config view --raw -o jsonpath='{.users[0].user.token}'</code></p>"
        "</main></body></html>"
    )
