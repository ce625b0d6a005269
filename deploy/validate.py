"""Checks deploy/ offline: the Kubernetes manifests, the custom resources and the compose file.

- Every document of `deploy/k8s/*.yaml` of a Kubernetes kind is validated with kubernetes-validate against
  the Kubernetes schemas it carries (KUBERNETES_VERSION), in strict mode: an unknown field fails. It
  reports the first problem of a document.
- KEDA's ScaledObject (CRD of KEDA v2.21.0) and the Prometheus Operator's PrometheusRule (v0.85.0) are
  validated against the OpenAPI schemas of their CustomResourceDefinitions, vendored in
  `deploy/k8s/schemas/` from the Go module proxy's release zips (details: `deploy/k8s/schemas/README.md`),
  made strict the same way; every problem of a document is reported.
- `kustomization.yaml` must list every manifest of the folder but `*.example.yaml` (never applied).
- `deploy/compose.yaml` is validated against the Compose Specification's schema (compose-go v2.17.0),
  vendored there too.

    python -m deploy.validate [--kubernetes-version 1.35] [FILE ...]

Exit status 0 when everything validates, 1 when something does not (each problem on a line), 2 when
kubernetes-validate carries no schemas for the Kubernetes release asked for.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

__all__ = [
    "COMPOSE_FILE",
    "CUSTOM_RESOURCES",
    "KUBERNETES_VERSION",
    "MANIFESTS_DIR",
    "Problem",
    "load_documents",
    "main",
    "validate_all",
    "validate_compose",
    "validate_file",
    "validate_kustomization",
    "validate_resource",
]

DEPLOY_DIR = Path(__file__).resolve().parent
MANIFESTS_DIR = DEPLOY_DIR / "k8s"
SCHEMAS_DIR = MANIFESTS_DIR / "schemas"
COMPOSE_FILE = DEPLOY_DIR / "compose.yaml"
KUSTOMIZATION = "kustomization.yaml"
EXAMPLE_SUFFIX = ".example.yaml"

KUBERNETES_VERSION = "1.35"
"""The Kubernetes release whose schemas the manifests must satisfy (one kubernetes-validate carries)."""

CUSTOM_RESOURCES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}
"""(apiVersion, kind) of each custom resource used, and its CRD's openAPIV3Schema in SCHEMAS_DIR."""

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_SUBDOMAIN},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "additionalProperties": False,
}
"""What a manifest's metadata may hold: a CRD's schema says only `type: object` of it."""


@dataclass(frozen=True)
class Problem:
    """Something in a file that does not validate: the file, which document, and what is wrong."""

    path: Path
    document: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: {self.document}" if self.document else str(self.path)
        return f"{where}: {self.message}"


def load_documents(path: Path) -> list[Any]:
    """The non-empty YAML documents of a file, in order."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def _describe(resource: Any) -> str:
    if not isinstance(resource, Mapping):
        return "a document that is not a mapping"
    metadata = resource.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f"{resource.get('kind', '?')}/{name or '?'}"


def _at(path: Sequence[Any]) -> str:
    return ".".join(str(part) for part in path) or "(top)"


def _strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that lists its properties, as the
    API server's strict field validation does (`kubectl apply --validate=strict`), unless it says it keeps
    unknown fields (`x-kubernetes-preserve-unknown-fields`)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields", False)
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def _custom_validator(schema_file: str) -> jsonschema.protocols.Validator:
    with (SCHEMAS_DIR / schema_file).open(encoding="utf-8") as handle:
        schema = _strict(json.load(handle))
    schema["properties"]["metadata"] = copy.deepcopy(_OBJECT_META)
    schema.setdefault("required", [])
    for field in ("apiVersion", "kind", "metadata"):
        if field not in schema["required"]:
            schema["required"].append(field)
    # A CRD's openAPIV3Schema is OpenAPI 3.0's schema object, whose keywords mean what JSON Schema draft 4
    # says they mean (exclusiveMinimum is a boolean there, for one).
    validator: jsonschema.protocols.Validator = jsonschema.Draft4Validator(schema)
    return validator


def validate_resource(resource: Any, kubernetes_version: str = KUBERNETES_VERSION) -> list[str]:
    """What is wrong with one manifest document (empty when it validates)."""
    if not isinstance(resource, Mapping):
        return ["not a mapping (a Kubernetes object has apiVersion, kind and metadata)"]
    api_version, kind = resource.get("apiVersion"), resource.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["apiVersion and kind must both be given as strings"]
    schema_file = CUSTOM_RESOURCES.get((api_version, kind))
    if schema_file is not None:
        errors = sorted(_custom_validator(schema_file).iter_errors(resource), key=lambda e: list(e.path))
        return [f"{_at(list(error.path))}: {error.message}" for error in errors]
    try:
        kubernetes_validate.validate(dict(resource), kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{_at(list(exc.path))}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            f"no schema for {kind} {api_version} in Kubernetes {kubernetes_version}, nor among the custom "
            f"resources vendored in {SCHEMAS_DIR.name}/ ({', '.join(k for _, k in CUSTOM_RESOURCES)})"
        ]
    return []


def validate_file(path: Path, kubernetes_version: str = KUBERNETES_VERSION) -> list[Problem]:
    """Every problem of a manifest file (all its documents), or of a kustomization.yaml."""
    if path.name == KUSTOMIZATION:
        return validate_kustomization(path)
    try:
        documents = load_documents(path)
    except (OSError, yaml.YAMLError) as exc:
        return [Problem(path, "", f"cannot be read as YAML: {exc}")]
    if not documents:
        return [Problem(path, "", "holds no document")]
    return [
        Problem(path, f"#{index} {_describe(document)}", message)
        for index, document in enumerate(documents, 1)
        for message in validate_resource(document, kubernetes_version)
    ]


def _manifests(directory: Path) -> list[Path]:
    return sorted(path for path in directory.glob("*.yaml") if path.name != KUSTOMIZATION)


def validate_kustomization(path: Path) -> list[Problem]:
    """The kustomization must name every manifest beside it but the examples, and nothing else."""
    try:
        (document,) = load_documents(path)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        return [Problem(path, "", f"is not one YAML document: {exc}")]
    resources = document.get("resources") if isinstance(document, Mapping) else None
    if not isinstance(resources, list) or not all(isinstance(item, str) for item in resources):
        return [Problem(path, "", "resources must be a list of file names")]
    listed = set(resources)
    files = {p.name for p in _manifests(path.parent)}
    examples = {name for name in files if name.endswith(EXAMPLE_SUFFIX)}
    problems = [
        Problem(path, "", f"resources names {name}, which is not in {path.parent}")
        for name in sorted(listed - files)
    ]
    problems += [
        Problem(path, "", f"resources does not name {name}") for name in sorted(files - examples - listed)
    ]
    problems += [
        Problem(path, "", f"resources names the example {name}: applying it would overwrite the real one")
        for name in sorted(listed & examples)
    ]
    if len(resources) != len(listed):
        problems.append(Problem(path, "", "resources names a file twice"))
    return problems


@cache
def _compose_validator() -> jsonschema.protocols.Validator:
    with (SCHEMAS_DIR / "compose-spec.json").open(encoding="utf-8") as handle:
        schema = json.load(handle)
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(schema)
    return validator


def validate_compose(path: Path = COMPOSE_FILE) -> list[Problem]:
    """Every problem of a compose file against the Compose Specification."""
    try:
        (document,) = load_documents(path)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        return [Problem(path, "", f"is not one YAML document: {exc}")]
    errors = sorted(_compose_validator().iter_errors(document), key=lambda e: list(e.path))
    return [Problem(path, "", f"{_at(list(error.path))}: {error.message}") for error in errors]


def _targets(files: Sequence[Path]) -> Iterator[Path]:
    if files:
        yield from files
        return
    yield from _manifests(MANIFESTS_DIR)
    yield MANIFESTS_DIR / KUSTOMIZATION
    yield COMPOSE_FILE


def validate_all(files: Sequence[Path] = (), kubernetes_version: str = KUBERNETES_VERSION) -> list[Problem]:
    """The problems of the named files, or of every manifest, the kustomization and the compose file."""
    problems: list[Problem] = []
    for path in _targets(files):
        if path.resolve() == COMPOSE_FILE or path.name in ("compose.yaml", "compose.yml"):
            problems += validate_compose(path)
        else:
            problems += validate_file(path, kubernetes_version)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.validate",
        description="Checks the manifests of deploy/k8s and deploy/compose.yaml offline.",
    )
    parser.add_argument("files", nargs="*", type=Path, help="files to check (default: all of deploy/)")
    parser.add_argument(
        "--kubernetes-version",
        default=KUBERNETES_VERSION,
        help=f"the Kubernetes release to validate against (default {KUBERNETES_VERSION})",
    )
    args = parser.parse_args(argv)
    files: list[Path] = args.files
    targets = list(_targets(files))
    try:
        problems = validate_all(targets, args.kubernetes_version)
    except kubernetes_validate.utils.VersionNotSupportedError:
        print(
            f"kubernetes-validate {kubernetes_validate.__version__} carries no schemas for Kubernetes "
            f"{args.kubernetes_version} (the latest it carries: {kubernetes_validate.latest_version()})",
            file=sys.stderr,
        )
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problems in {len({p.path for p in problems})} files", file=sys.stderr)
        return 1
    print(f"{len(targets)} files valid (Kubernetes {args.kubernetes_version}, strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
