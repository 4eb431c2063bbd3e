"""A real Prometheus (Debian's ``prometheus``) on a free loopback port, with its own config and
data directory, scraping the targets it is given; queried through its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from broker.localservices import LOOPBACK, free_port


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


class PrometheusService:
    """``prometheus`` scraping ``targets`` (job name -> ``host:port`` list) every ``interval``."""

    def __init__(self, root: Path, targets: dict[str, list[str]], interval: str = "1s") -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError("prometheus is not installed (bash scripts/ensure-tools.sh)")
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]}
                for job, hosts in targets.items()
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._log = (root / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._root = root

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once ``/-/ready`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited: {(self._root / 'prometheus.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready after {timeout} s")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query (a vector's samples; a scalar as one sample)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{expr}: {exc.read().decode(errors='replace')}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{expr}: {body}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as reply:
            return json.loads(reply.read())["data"]["activeTargets"]

    def stop(self) -> None:
        """Stop Prometheus and wait for it."""
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()
