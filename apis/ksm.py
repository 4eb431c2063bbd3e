"""A kube-state-metrics ``CustomResourceStateMetrics`` configuration generated from the CRDs.

For real clusters, where kube-state-metrics exposes custom resources: one resource entry per
served kind (canonical and legacy), its metrics derived from the kind's ``status`` schema (see
``docs/operations.md`` for the rules and the series names). ``deploy/kube-state-metrics/`` holds
this module's output (``sedna ksm-config``); a test fails when it is stale or reads a path the
CRD schema does not have (``unknown_paths``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from apis.crds import JsonSchema, openapi_schema
from apis.registry import KINDS, KindInfo

Path = list[str]
Metric = dict[str, Any]

#: Labels every series carries (KSM adds its own ``customresource_group/kind/version`` too).
RESOURCE_LABELS: dict[str, Path] = {
    "namespace": ["metadata", "namespace"],
    "name": ["metadata", "name"],
}
#: Fields of ``metadata`` (Kubernetes ObjectMeta; the CRD schema leaves it opaque) a path may read.
OBJECT_META_FIELDS = {"name", "namespace", "labels", "annotations", "uid", "creationTimestamp"}
#: Free-text status fields: not labels (unbounded values).
_TEXT_FIELDS = {"message", "reason", "data"}
#: Fields that identify an item of a status list, and the label each becomes.
_ITEM_KEYS = {"name": None, "nodeName": "node", "key": "key"}
_NUMERIC = {"integer", "number"}


def snake(name: str) -> str:
    """``numberOfSamples`` -> ``number_of_samples``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def metric_prefix(info: KindInfo) -> str:
    """The series name prefix of a kind: ``sedna_<singular>``, e.g. ``sedna_dataset``."""
    return f"sedna_{info.singular}"


def _gauge(name: str, help_: str, path: Path, **extra: Any) -> Metric:
    return {
        "name": name,
        "help": help_,
        "each": {"type": "Gauge", "gauge": {"path": path, **extra}},
    }


def _info(name: str, help_: str, path: Path, labels: dict[str, Path]) -> Metric:
    return {
        "name": name,
        "help": help_,
        "each": {"type": "Info", "info": {"path": path, "labelsFromPath": labels}},
    }


def _scalar_metrics(base: Path, props: dict[str, JsonSchema]) -> list[Metric]:
    """Gauges for numbers and timestamps, state sets for enums, one info for other strings."""
    metrics: list[Metric] = []
    info_labels: dict[str, Path] = {}
    where = ".".join(base)
    for prop, schema in props.items():
        kind, name = schema.get("type"), snake(prop)
        if kind in _NUMERIC:
            metrics.append(_gauge(name, f"{where}.{prop}", [*base, prop]))
        elif kind == "string" and schema.get("format") == "date-time":
            metrics.append(_gauge(f"{name}_seconds", f"{where}.{prop} (Unix time)", [*base, prop]))
        elif kind == "string" and "enum" in schema:
            state_set = {"path": [*base, prop], "labelName": name, "list": schema["enum"]}
            metrics.append(
                {
                    "name": name,
                    "help": f"1 for the {where}.{prop} the object is in",
                    "each": {"type": "StateSet", "stateSet": state_set},
                }
            )
        elif kind == "string" and prop not in _TEXT_FIELDS:
            info_labels[name] = [prop]
    if info_labels:
        metrics.append(
            _info(
                "info" if base[-1] == "spec" else "status_info",
                f"{where} as labels",
                base,
                info_labels,
            )
        )
    return metrics


def _list_metrics(field: str, items: JsonSchema) -> list[Metric]:
    """Series of a status list whose items have a key (workers, nodes, key/value metrics)."""
    props: dict[str, JsonSchema] = items.get("properties", {})
    noun = snake(field).removesuffix("s")
    keys = {p: (label or noun) for p, label in _ITEM_KEYS.items() if p in props}
    if not keys or ("key" in keys and "value" not in props):
        return []  # e.g. conditions: an append-only history, no key (docs/operations.md)
    path = ["status", field]
    labels = {label: [p] for p, label in keys.items()}
    if "key" in keys:
        return [
            _gauge(
                noun,
                f"status.{field}[].value by key",
                path,
                valueFrom=["value"],
                labelsFromPath=labels,
            )
        ]
    metrics = []
    info_labels = dict(labels)
    for prop, schema in props.items():
        if prop in keys:
            continue
        kind, name = schema.get("type"), f"{noun}_{snake(prop)}"
        if kind in _NUMERIC:
            metrics.append(
                _gauge(
                    name, f"status.{field}[].{prop}", path, valueFrom=[prop], labelsFromPath=labels
                )
            )
        elif kind == "string" and schema.get("format") == "date-time":
            metrics.append(
                _gauge(
                    f"{name}_seconds",
                    f"status.{field}[].{prop} (Unix time)",
                    path,
                    valueFrom=[prop],
                    labelsFromPath=labels,
                )
            )
        elif kind == "string" and prop not in _TEXT_FIELDS:
            info_labels[snake(prop)] = [prop]
    metrics.append(_info(f"{noun}_info", f"status.{field}[] as labels", path, info_labels))
    return metrics


def resource_config(info: KindInfo) -> dict[str, Any]:
    """The ``spec.resources[]`` entry of one kind."""
    schema = openapi_schema(info)["properties"]
    spec_strings = {
        p: s
        for p, s in schema["spec"].get("properties", {}).items()
        if s.get("type") == "string" and p != "credentialName"
    }
    status_props: dict[str, JsonSchema] = schema["status"].get("properties", {})
    metrics = _scalar_metrics(["spec"], spec_strings)
    metrics += _scalar_metrics(
        ["status"], {p: s for p, s in status_props.items() if s.get("type") != "array"}
    )
    for field, prop in status_props.items():
        if prop.get("type") == "array" and prop.get("items", {}).get("type") == "object":
            metrics += _list_metrics(field, prop["items"])
    return {
        "groupVersionKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "resourcePlural": info.plural,
        "metricNamePrefix": metric_prefix(info),
        "commonLabels": {"kind": info.kind},
        "labelsFromPath": {label: list(path) for label, path in RESOURCE_LABELS.items()},
        "metrics": metrics,
    }


def ksm_config() -> dict[str, Any]:
    """The whole ``CustomResourceStateMetrics`` document, every served kind."""
    return {
        "kind": "CustomResourceStateMetrics",
        "spec": {"resources": [resource_config(info) for info in KINDS]},
    }


class _Dumper(yaml.SafeDumper):
    """YAML without anchors, paths in flow style (``[status, workers]``) as in KSM's docs."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(item, str) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def ksm_yaml() -> str:
    """The configuration as YAML, in a stable order, with a generated-file header."""
    header = "# Generated by `sedna ksm-config --write`; do not edit.\n"
    body = yaml.dump(ksm_config(), Dumper=_Dumper, sort_keys=False, default_flow_style=False)
    return header + body


def metric_paths(metric: Metric) -> list[Path]:
    """Every object path one metric reads: its path, value and label paths appended to it."""
    each = metric["each"]
    body = each[{"Gauge": "gauge", "Info": "info", "StateSet": "stateSet"}[each["type"]]]
    base: Path = body["path"]
    paths = [base]
    if "valueFrom" in body:
        paths.append([*base, *body["valueFrom"]])
    paths += [[*base, *p] for p in body.get("labelsFromPath", {}).values()]
    return paths


def _resolves(schema: JsonSchema, path: Path) -> bool:
    """Whether ``path`` names a field of ``schema`` (list items are stepped into)."""
    if path[:1] == ["metadata"]:
        return (len(path) == 2 and path[1] in OBJECT_META_FIELDS) or (
            len(path) == 3 and path[1] in {"labels", "annotations"}
        )
    node = schema
    for segment in path:
        if node.get("type") == "array":
            node = node.get("items", {})
        props = node.get("properties", {})
        if segment not in props:
            return False
        node = props[segment]
    return True


def unknown_paths(config: dict[str, Any], crds: list[dict[str, Any]]) -> list[str]:
    """``group/kind: metric: path`` for every path of ``config`` its CRD's schema does not have."""
    schemas = {
        (crd["spec"]["group"], crd["spec"]["names"]["kind"]): crd["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"
        ]
        for crd in crds
    }
    problems = []
    for resource in config["spec"]["resources"]:
        gvk = resource["groupVersionKind"]
        schema = schemas.get((gvk["group"], gvk["kind"]))
        if schema is None:
            problems.append(f"{gvk['group']}/{gvk['kind']}: no such CRD")
            continue
        checks = [("labelsFromPath", p) for p in resource.get("labelsFromPath", {}).values()]
        checks += [(m["name"], p) for m in resource["metrics"] for p in metric_paths(m)]
        problems += [
            f"{gvk['group']}/{gvk['kind']}: {name}: {'.'.join(path)}"
            for name, path in checks
            if not _resolves(schema, path)
        ]
    return problems
