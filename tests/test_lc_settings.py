"""LC settings from flags and environment, with errors naming the flag and the variable."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lc.errors import InvalidSettings
from lc.settings import LCSettings, add_arguments, build, default_data_dir, from_args


def parse(argv: list[str], environ: dict[str, str] | None = None) -> LCSettings:
    parser = argparse.ArgumentParser(prog="sedna lc")
    add_arguments(parser)
    return from_args(parser.parse_args(argv), environ or {})


def test_flags() -> None:
    settings = parse(
        [
            "--node", "edge0",
            "--data-dir", "/var/lib/sedna",
            "--port", "0",
            "--redis-url", "redis://127.0.0.1:6390/2",
            "--mqtt-url", "mqtts://broker.example:8883",
            "--mqtt-username", "edge0",
            "--mqtt-password", "s3cret",
            "--worker-grace-period", "5",
            "--dataset-poll-period", "0.5",
        ]
    )  # fmt: skip
    assert settings.node == "edge0" and settings.data_dir == Path("/var/lib/sedna")
    assert settings.report_port == 0 and settings.redis_url.endswith(":6390/2")
    assert settings.mqtt_url == "mqtts://broker.example:8883"
    assert settings.mqtt_username == "edge0"
    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert (settings.worker_grace_period, settings.dataset_poll_period) == (5.0, 0.5)


def test_environment_fallbacks_and_defaults() -> None:
    env = {
        "SEDNA_NODE": "edge1.site-a",
        "SEDNA_LC_PORT": "9200",
        "SEDNA_REDIS_URL": "unix:///run/redis.sock",
        "SEDNA_MQTT_PASSWORD": "pw",
    }
    settings = parse([], env)
    assert settings.node == "edge1.site-a" and settings.report_port == 9200
    assert settings.redis_url == "unix:///run/redis.sock"
    assert settings.mqtt_url == "mqtt://127.0.0.1:1883"
    assert settings.data_dir == default_data_dir("edge1.site-a")
    assert settings.report_url == "http://127.0.0.1:9200"


def test_flags_win_over_environment() -> None:
    settings = parse(
        ["--node", "edge2", "--port", "9300"], {"SEDNA_NODE": "x", "SEDNA_LC_PORT": "1"}
    )
    assert (settings.node, settings.report_port) == ("edge2", 9300)


def test_node_is_required() -> None:
    with pytest.raises(InvalidSettings, match=r"--node \(or SEDNA_NODE\) is required"):
        parse([])


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--node", "Edge_0"], "--node (or SEDNA_NODE): Value error, must be a DNS-1123 name"),
        (["--node=-edge"], "DNS-1123"),
        (["--node", "e", "--port", "70000"], "--port (or SEDNA_LC_PORT)"),
        (["--node", "e", "--port", "ninety"], "--port (or SEDNA_LC_PORT)"),
        (["--node", "e", "--redis-url", "http://x:1"], "--redis-url (or SEDNA_REDIS_URL)"),
        (["--node", "e", "--redis-url", "redis://:1"], "has no host"),
        (["--node", "e", "--mqtt-url", "mqtt://h:port"], "invalid port"),
        (["--node", "e", "--mqtt-url", "amqp://h"], "--mqtt-url (or SEDNA_MQTT_URL)"),
        (["--node", "e", "--worker-grace-period", "0"], "--worker-grace-period"),
    ],
)
def test_bad_values_name_flag_and_variable(argv: list[str], words: str) -> None:
    with pytest.raises(InvalidSettings) as err:
        parse(argv)
    assert words in str(err.value)


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(InvalidSettings) as err:
        parse([], {"SEDNA_NODE": "edge0", "SEDNA_LC_PORT": "-1"})
    assert "--port (or SEDNA_LC_PORT)" in str(err.value) and "got '-1'" in str(err.value)


def test_bad_password_is_not_echoed() -> None:
    with pytest.raises(InvalidSettings) as err:
        build({"node": "edge0", "data_dir": "/d", "mqtt_password": ["hunter2"]})
    assert "--mqtt-password (or SEDNA_MQTT_PASSWORD)" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(InvalidSettings, match="report_prot"):
        build({"node": "edge0", "data_dir": "/d", "report_prot": 1})
