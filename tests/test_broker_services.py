"""Mosquitto configuration and the local service launchers."""

import subprocess
from pathlib import Path

import pytest

from broker.localservices import (
    MissingBinary,
    MosquittoService,
    RedisService,
    ServiceError,
    find_binary,
)
from broker.mosquitto import (
    MosquittoOptions,
    generate_credentials,
    hash_password,
    render_acl,
    write_mosquitto_config,
)


def test_password_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    import base64

    passwd = tmp_path / "passwd"
    tool = find_binary("mosquitto_passwd", "mosquitto")
    subprocess.run([tool, "-c", "-b", str(passwd), "edge0", "s3cret"], check=True)
    user, hashed = passwd.read_text().strip().split(":", 1)
    salt = base64.b64decode(hashed.split("$")[3])
    assert user == "edge0"
    assert hash_password("s3cret", salt=salt) == hashed


def test_acl_gives_each_node_only_its_own_topics() -> None:
    acl = render_acl(["edge0"])
    assert "user gm\ntopic readwrite sedna/#\n" in acl
    assert (
        "user edge0\n"
        "topic read sedna/node/edge0/down/#\n"
        "topic read sedna/node/edge0/ack\n"
        "topic write sedna/node/edge0/up/#\n"
        "topic write sedna/node/edge0/state\n"
    ) in acl


def test_config_with_and_without_auth(tmp_path: Path) -> None:
    options = MosquittoOptions(port=18830, data_dir=tmp_path / "data")
    files = write_mosquitto_config(tmp_path / "auth", options, nodes=["edge0", "edge1"])
    text = files.config.read_text()
    assert "listener 18830 127.0.0.1" in text and "allow_anonymous false" in text
    assert f"persistence_location {(tmp_path / 'data').resolve()}/" in text
    assert files.credentials is not None and sorted(files.credentials.nodes) == ["edge0", "edge1"]
    assert files.password_file is not None and files.password_file.stat().st_mode & 0o077 == 0

    open_files = write_mosquitto_config(
        tmp_path / "open", options.model_copy(update={"auth": False})
    )
    assert "allow_anonymous true" in open_files.config.read_text()
    assert open_files.credentials is None


def test_bad_node_names_are_refused() -> None:
    with pytest.raises(ValueError, match="node name 'gm' is reserved"):
        generate_credentials(["gm"])
    with pytest.raises(ValueError, match="node name 'Edge_0' is not a DNS-1123 subdomain"):
        generate_credentials(["Edge_0"])


def test_missing_binary_names_the_apt_package() -> None:
    with pytest.raises(MissingBinary, match="apt-get install -y no-such-package"):
        find_binary("no-such-sedna-binary", "no-such-package")


def test_a_taken_port_is_refused(tmp_path: Path) -> None:
    with RedisService(tmp_path / "first") as first:
        clash = RedisService(tmp_path / "second", port=first.port)
        with pytest.raises(
            ServiceError, match=f"another process already listens on port {first.port}"
        ):
            clash.start()


def test_a_service_that_cannot_start_shows_its_log(tmp_path: Path) -> None:
    manifest = tmp_path / "redis" / "appendonlydir" / "appendonly.aof.manifest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("not a manifest\n")
    with pytest.raises(ServiceError, match=r"(?s)exited with code \d+ while starting.*manifest"):
        RedisService(tmp_path / "redis").start()


def test_restart_keeps_port_and_retained_data(tmp_path: Path) -> None:
    service = MosquittoService(tmp_path / "m").start()
    try:
        port, pid = service.port, service.pid
        service.restart()
        assert service.port == port and service.pid != pid and service.running
        service.freeze()
        service.thaw()
        service.kill()
        assert not service.running and service.pid is None
    finally:
        service.kill()
