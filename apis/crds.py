"""CustomResourceDefinition manifests generated from the pydantic models.

The models are the single source of the API contract; ``deploy/crds/*.yaml`` is this module's
output (``sedna crds``) and a test fails when the committed files are stale.
"""

from __future__ import annotations

from typing import Any

import yaml

from apis.registry import KINDS, KindInfo

JsonSchema = dict[str, Any]

_DROPPED_KEYS = {"title", "default", "examples"}


def _structural(schema: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    """Turn a pydantic JSON schema node into a Kubernetes structural OpenAPI v3 schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in schema:  # Optional[X] -> X (absence is how Kubernetes spells "not set")
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {schema}")
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return _structural({**options[0], **rest}, defs)

    out: JsonSchema = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _structural(value, defs)
        elif key == "required":
            out[key] = sorted(value)
        elif key == "minLength" and schema.get("type") == "array":
            out["minItems"] = value
        elif key == "minItems" or key not in {"$defs"}:
            out[key] = value
    if "description" in out:
        out["description"] = out["description"].replace("``", "")
    if out.get("properties") == {}:
        del out["properties"]
    if out.get("type") != "object":
        return out
    if "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def openapi_schema(info: KindInfo) -> JsonSchema:
    """The ``openAPIV3Schema`` of one kind: apiVersion, kind, metadata, spec, status."""
    pyd = info.model.model_json_schema(by_alias=True, mode="validation")
    defs = pyd.get("$defs", {})
    props = pyd["properties"]
    return {
        "type": "object",
        "description": info.model.__doc__.strip().splitlines()[0].replace("``", ""),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _structural(props["spec"], defs),
            "status": _structural(props["status"], defs),
        },
    }


def crd_manifest(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, installable as is on a real cluster."""
    names: dict[str, Any] = {
        "kind": info.kind,
        "listKind": f"{info.kind}List",
        "plural": info.plural,
        "singular": info.singular,
        "categories": ["sedna"],
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    columns = []
    for column in info.printer_columns:
        entry: dict[str, Any] = {
            "name": column.name,
            "type": column.type,
            "jsonPath": column.json_path,
        }
        if column.description:
            entry["description"] = column.description
        if column.priority:
            entry["priority"] = column.priority
        columns.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{info.group}"},
        "spec": {
            "group": info.group,
            "names": names,
            "scope": "Namespaced",
            "versions": [
                {
                    "name": info.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": openapi_schema(info)},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def crd_manifests() -> list[dict[str, Any]]:
    """The CRDs of every served kind, canonical group first."""
    return [crd_manifest(info) for info in KINDS]


def crd_file_name(manifest: dict[str, Any]) -> str:
    """The file name of a CRD under ``deploy/crds``: ``<group>_<plural>.yaml``."""
    return f"{manifest['spec']['group']}_{manifest['spec']['names']['plural']}.yaml"


def crd_yaml(manifest: dict[str, Any]) -> str:
    """A CRD as YAML, in a stable order."""
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)
