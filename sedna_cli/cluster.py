"""``sedna cluster-secrets``: the Secrets ``deploy/cluster`` expects, with fresh credentials.

Prints Secret manifests for ``kubectl apply -f -``: the broker's password file and ACL (one
user per node, ``broker.mosquitto``), the GM's broker password and token secret, the Redis
password, and per node ``sedna-lc-<node>`` holding that node's ``lc.env`` (its broker user,
password and the broker address), which goes to ``/etc/sedna/lc.env`` on the node.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

import yaml

from broker.mosquitto import generate_credentials, render_acl, render_password_file
from broker.urls import bus_settings_from_url


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``cluster-secrets`` subcommand."""
    parser = subparsers.add_parser(
        "cluster-secrets", help="print the Secrets of deploy/cluster with fresh credentials"
    )
    parser.add_argument(
        "--nodes", required=True, help="comma-separated names of the nodes that run an LC"
    )
    parser.add_argument(
        "--mqtt-url",
        required=True,
        help="the broker as the edge nodes reach it, e.g. mqtt://<cloud node IP>:31883",
    )
    parser.add_argument("--namespace", default="sedna", help="namespace of deploy/cluster")
    parser.set_defaults(run=run)


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    }


def lc_env(node: str, mqtt_url: str, password: str) -> str:
    """A node's ``/etc/sedna/lc.env``: the variables ``sedna lc`` reads."""
    return (
        f"SEDNA_NODE={node}\n"
        f"SEDNA_MQTT_URL={mqtt_url}\n"
        f"SEDNA_MQTT_USERNAME={node}\n"
        f"SEDNA_MQTT_PASSWORD={password}\n"
    )


def cluster_secrets(nodes: list[str], mqtt_url: str, namespace: str) -> list[dict[str, Any]]:
    """The Secret objects, with new random passwords for the GM, every node and Redis."""
    bus_settings_from_url(mqtt_url)  # fails early with a clear message on a bad URL
    credentials = generate_credentials(nodes)
    objects = [
        _secret(
            "sedna-mosquitto-auth",
            namespace,
            {
                "passwd": render_password_file(credentials),
                "acl": render_acl(credentials.nodes, gm_user=credentials.gm.username),
            },
        ),
        _secret(
            "sedna-gm",
            namespace,
            {"mqtt-password": credentials.gm.password, "token-secret": secrets.token_hex(32)},
        ),
        _secret("sedna-redis", namespace, {"password": secrets.token_urlsafe(24)}),
    ]
    for node, user in credentials.nodes.items():
        env = lc_env(node, mqtt_url, user.password)
        objects.append(_secret(f"sedna-lc-{node}", namespace, {"lc.env": env}))
    return objects


class _Dumper(yaml.SafeDumper):
    """YAML with multi-line strings as literal blocks, as people write Secrets."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def run(args: argparse.Namespace) -> int:
    """Print the Secrets as one YAML stream."""
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    try:
        objects = cluster_secrets(nodes, args.mqtt_url, args.namespace)
    except ValueError as exc:
        print(f"sedna cluster-secrets: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False))
    return 0
