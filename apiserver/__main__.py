"""`python -m apiserver --data-dir DIR [--port N]`: run the embedded API server alone."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from apiserver.server import ApiServer, ApiServerError
from apiserver.store import SYNC_MODES

log = logging.getLogger("apiserver")


class Settings(BaseModel):
    """Command-line settings."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    crd_files: list[Path] = []
    builtin_crds: bool = True
    audit_log: Path | None = None
    sync: Literal["full", "normal"] | None = None
    log_level: str = "INFO"


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse the command line into settings."""
    parser = argparse.ArgumentParser(prog="python -m apiserver", description=__doc__)
    parser.add_argument("--data-dir", required=True, type=Path, help="where state is kept")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", default=0, type=int, help="port (0 picks a free one)")
    parser.add_argument(
        "--crd",
        dest="crd_files",
        action="append",
        default=[],
        type=Path,
        help="a YAML file of CustomResourceDefinitions to serve (repeatable)",
    )
    parser.add_argument(
        "--no-builtin-crds",
        dest="builtin_crds",
        action="store_false",
        help="do not install the project's own CRDs",
    )
    parser.add_argument(
        "--audit-log",
        type=Path,
        help="append every resource request to this JSON-lines file "
        "(env SEDNA_APISERVER_AUDIT_LOG)",
    )
    parser.add_argument(
        "--sync",
        choices=SYNC_MODES,
        help="full: a write is answered once its log is synced to disk (survives power loss); "
        "normal: once it is in the OS (survives a killed process); default: env "
        "SEDNA_APISERVER_SYNC, else full",
    )
    parser.add_argument("--log-level", default="INFO")
    return Settings(**vars(parser.parse_args(argv)))


def load_crd_files(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The CustomResourceDefinition documents in YAML files."""
    crds = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return crds


def project_crds() -> list[dict[str, Any]]:
    """The project's CRDs from `apis.crd_manifests()`, once that package provides it."""
    import apis

    manifests = getattr(apis, "crd_manifests", None)
    if manifests is None:
        log.warning("apis.crd_manifests() is not available; serving no project CRDs")
        return []
    return list(manifests())


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGINT or SIGTERM."""
    settings = parse_args(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    crds = load_crd_files(settings.crd_files)
    if settings.builtin_crds:
        crds = project_crds() + crds
    server = ApiServer(
        settings.data_dir,
        settings.host,
        settings.port,
        crds,
        audit_log=settings.audit_log,
        sync=settings.sync,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
    except ApiServerError as exc:
        log.error("cannot start: %s", exc)
        return 1
    kubeconfig = settings.data_dir / "kubeconfig"
    server.write_kubeconfig(kubeconfig)
    log.info("serving at %s; kubeconfig written to %s", server.url, kubeconfig)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping")
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
