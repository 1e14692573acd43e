"""charts/edgepolicy against the rest of the repository: the CRDs are deploy/'s, appVersion is the
project's version, and values.schema.json accepts the defaults and refuses what cannot work."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "edgepolicy"


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_chart_crds_are_deploy_base_crds_byte_for_byte() -> None:
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    deploy = {p.name: p.read_bytes() for p in (ROOT / "deploy/base/crds").iterdir()}
    assert chart == deploy


def test_app_version_is_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"]


def test_default_values_satisfy_the_schema() -> None:
    errors = list(_validator().iter_errors(_values()))
    assert errors == []


def _with(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(_values())
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node[key]
    node[last] = value
    return values


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("failurePolicy", "Maybe"),
        ("replicas", 0),
        ("replicas", "2"),
        ("bundle.source", "s3"),
        ("excludedNamespaces", ["Kube_System"]),
        ("image.digest", "sha256:short"),
        ("opa.image.digest", "latest"),
        ("signing.algorithm", "HS256"),
        ("signing.keyId", "has.dots"),  # would break OPA's --set-file path
        ("signing.publicKey", "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n"),
        ("resources.limits.memory", "lots"),
        ("bundle.http.url", "ftp://bundles.example.com"),
        ("tls.caBundle", "not base64!"),
        ("unknownKey", True),
    ],
)
def test_schema_refuses_values_that_cannot_work(path: str, value: Any) -> None:
    assert list(_validator().iter_errors(_with(path, value)))


def test_oci_source_requires_registry_and_reference() -> None:
    validator = _validator()
    oci = _with("bundle.source", "oci")
    assert list(validator.iter_errors(oci))
    oci["bundle"]["oci"] = {
        "registry": "https://registry.example.com",
        "reference": "registry.example.com/platform/edgepolicy-bundle:1.4.0",
    }
    assert list(validator.iter_errors(oci)) == []


def test_a_public_key_is_accepted() -> None:
    key = (ROOT / "tests/e2e/assets/user-overlay/bundle-signing.pub").read_text()
    assert list(_validator().iter_errors(_with("signing.publicKey", key))) == []
