"""The components ``sedna up`` can run in a process of their own, by name.

Each entry says which settings model a component takes and how to build it from validated
settings; `sedna_cli.child` runs any of them in a child process, `sedna_cli.procs` starts that
child. Adding a component (e.g. the ops page) is one entry here and one part in
`sedna_cli.stack` (see ``_cloud_parts``); nothing else changes.

The builders import their component only when called, so a child loads only its own code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr

__all__ = [
    "COMPONENTS",
    "PRELOAD",
    "ApiServerComponent",
    "ApiServerSettings",
    "ChildEvent",
    "ChildStart",
    "Component",
    "ComponentKind",
    "settings_values",
]


class ChildStart(BaseModel):
    """What a child runs: the component, its settings, where it works and logs."""

    model_config = ConfigDict(extra="forbid")

    component: str
    settings: dict[str, Any]
    log_level: str = "INFO"
    #: The child's working directory (the component's own: PID file and log are there).
    directory: str
    #: Where its JSON logs (and anything else it writes to stdout/stderr) go.
    log_file: str
    #: The parent's environment when the child was started (the forkserver's is older).
    environ: dict[str, str] = {}


class ChildEvent(BaseModel):
    """A line a child writes to its parent: ``ready`` (serving), ``failed`` (could not start,
    ``error`` says why), ``node`` (the GM saw ``node`` go ``state``)."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["ready", "failed", "node"]
    error: str | None = None
    node: str | None = None
    state: str | None = None


Emit = Callable[[ChildEvent], None]


class Component(Protocol):
    """What every component offers: start (returns once it serves) and stop."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


class ApiServerSettings(BaseModel):
    """The embedded API server as ``sedna up`` runs it (with the project's CRDs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    host: str = "127.0.0.1"
    port: int
    #: Where to write the kubeconfig once serving (the CA and token are made on first start).
    kubeconfig: Path
    sync: Literal["full", "normal"] | None = None
    #: Whence each node's log token is derived (``apiserver.podlogs``); None: no node logs.
    node_log_secret: SecretStr | None = None


class ApiServerComponent:
    """`apiserver.ApiServer` with the project's CRDs that writes its kubeconfig on start."""

    def __init__(self, settings: ApiServerSettings) -> None:
        from apis import crd_manifests
        from apiserver import ApiServer

        self.settings = settings
        self.server = ApiServer(
            settings.data_dir,
            host=settings.host,
            port=settings.port,
            crds=crd_manifests(),
            sync=settings.sync,
            node_log_secret=(
                settings.node_log_secret.get_secret_value() if settings.node_log_secret else None
            ),
        )

    def start(self) -> None:
        """Serve, then write the kubeconfig."""
        self.server.start()
        self.server.write_kubeconfig(self.settings.kubeconfig)

    def stop(self) -> None:
        """Stop serving."""
        self.server.stop()


@dataclass(frozen=True)
class ComponentKind:
    """How to run one kind of component from its settings."""

    name: str
    #: Loads the settings model (lazily: a child imports only its own component).
    settings: Callable[[], type[BaseModel]]
    build: Callable[[Any], Component]
    #: How to stop it when the whole stack goes down (default ``stop()``); the LC stops its
    #: workers then, but keeps them for the next LC on any other stop.
    shutdown: Callable[[Any], None] | None = None
    #: Hooks the built component to the parent (``emit`` sends it a `ChildEvent`).
    connect: Callable[[Any, Emit], None] | None = None


def _gm_settings() -> type[BaseModel]:
    from gm.settings import GMSettings

    return GMSettings


def _gm(settings: Any) -> Component:
    from gm.app import GMApp

    return GMApp(settings)


def _gm_events(gm: Any, emit: Emit) -> None:
    gm.manager.node_listeners.append(
        lambda node, state: emit(ChildEvent(event="node", node=node, state=state))
    )


def _lc_settings() -> type[BaseModel]:
    from lc.settings import LCSettings

    return LCSettings


def _lc(settings: Any) -> Component:
    from lc.agent import LocalController

    return LocalController(settings)


def _kb_settings() -> type[BaseModel]:
    from kb import KBSettings

    return KBSettings


def _kb(settings: Any) -> Component:
    from kb import KBServer

    return KBServer(settings)


def _opsui_settings() -> type[BaseModel]:
    from opsui import OpsSettings

    return OpsSettings


def _opsui(settings: Any) -> Component:
    from opsui import OpsUI

    return OpsUI(settings)


COMPONENTS: dict[str, ComponentKind] = {
    kind.name: kind
    for kind in (
        ComponentKind("apiserver", lambda: ApiServerSettings, ApiServerComponent),
        ComponentKind("gm", _gm_settings, _gm, connect=_gm_events),
        ComponentKind("lc", _lc_settings, _lc, shutdown=lambda lc: lc.stop(stop_workers=True)),
        ComponentKind("kb", _kb_settings, _kb),
        ComponentKind("opsui", _opsui_settings, _opsui),
    )
}


#: Modules the forkserver imports once, so that each child starts without loading them again
#: (a new component adds its module here).
#: ``sedna_cli.main`` too: a child runs the parent's main module again (as ``__mp_main__``).
PRELOAD = ("sedna_cli.child", "sedna_cli.main", "apiserver", "gm.app", "lc.agent", "kb", "opsui")


def settings_values(settings: BaseModel) -> dict[str, Any]:
    """A settings model as JSON-ready field values, secrets included (for a private pipe)."""
    values = settings.model_dump(mode="json")
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values[name] = value.get_secret_value()
    return values
