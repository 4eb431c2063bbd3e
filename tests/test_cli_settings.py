"""``sedna gm`` and ``sedna lc`` refuse bad settings at start-up, naming flag and variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gm import settings as gm_settings
from sedna_cli.main import build_parser


def _sedna(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sedna_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_gm_refuses_a_bad_port_naming_flag_and_variable() -> None:
    result = _sedna("gm", "--http-port", "99999")
    assert result.returncode != 0
    assert "--http-port (or SEDNA_GM_PORT)" in result.stderr
    assert "99999" in result.stderr


def test_gm_refuses_an_unknown_backend_from_the_environment() -> None:
    result = _sedna("gm", env={"SEDNA_GM_BACKEND": "docker"})
    assert result.returncode != 0
    assert "--backend (or SEDNA_GM_BACKEND)" in result.stderr


def test_lc_needs_a_dns_1123_node_name() -> None:
    assert "--node (or SEDNA_NODE) is required" in _sedna("lc").stderr
    assert "DNS-1123" in _sedna("lc", "--node", "Bad_Node").stderr


def test_gm_flags_win_over_the_environment_and_secrets_are_not_shown() -> None:
    args = build_parser().parse_args(["gm", "--backend", "pods"])
    environ = {"SEDNA_GM_BACKEND": "edge-process", "SEDNA_MQTT_URL": "mqtt://broker:1883"}
    settings = gm_settings.from_args(args, environ)
    assert settings.backend == "pods"
    assert settings.mqtt_url == "mqtt://broker:1883"
    with pytest.raises(gm_settings.InvalidSettings) as error:
        gm_settings.build({"workers": 0, "token_secret": "hunter2"})
    assert "--workers (or SEDNA_GM_WORKERS)" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_gm_and_lc_share_one_settings_mechanism_and_one_error_type() -> None:
    from apis.settings import ComponentSettings, InvalidSettings
    from lc import LCSettings
    from lc.errors import InvalidSettings as LCInvalidSettings

    assert gm_settings.InvalidSettings is InvalidSettings is LCInvalidSettings
    assert issubclass(gm_settings.GMSettings, ComponentSettings)
    assert issubclass(LCSettings, ComponentSettings)
    for command in ("gm", "lc"):
        help_text = _sedna(command, "--help").stdout
        assert "SEDNA_MQTT_URL" in help_text and "SEDNA_REDIS_URL" in help_text
    with pytest.raises(InvalidSettings, match=r"--port \(or SEDNA_LC_PORT\)"):
        LCSettings.build({"node": "edge0", "data_dir": "/d", "report_port": "x"})
