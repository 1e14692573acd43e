"""Validating policies once, against the shipped CRD: every field's error message, nulls read
as Kubernetes reads them, the enforceable part of an invalid policy, new kinds by CRD alone."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepolicy import crd_schema
from edgepolicy.validated_policies import check_policy, validate_policies

SELECTOR = {"matchLabels": {"app": "web"}}
KEY_RULE = (
    "a valid label key: a name of 1 to 63 letters, digits, '-', '_' or '.' that begins and "
    "ends with a letter or digit, optionally after a DNS subdomain prefix and '/' (for example "
    "app.kubernetes.io/name)"
)
VALUE_RULE = (
    "a valid label value: at most 63 letters, digits, '-', '_' or '.' that begins and ends "
    "with a letter or digit, or empty"
)
SEED_SPEC = {
    "targetWorkloadSelector": {
        "matchLabels": {"app": "ai-inference-service", "env": "production-edge"}
    },
    "costLimits": {"dailyGPUHours": 18, "maxCPUCores": 8, "maxMemoryGB": 32},
    "optimizationRules": {"idleShutdownThresholdMinutes": 30, "modelQuantizationRequired": True},
    "autoScale": {"minReplicas": 1, "maxReplicas": 3, "cpuUtilizationPercentage": 70},
    "alerting": {
        "thresholdExceeded": {"severity": "CRITICAL", "recipientGroup": "finops-team-edge"},
        "idleShutdown": {"severity": "INFO", "recipientGroup": "mlops-team"},
    },
}


def _policy(spec: Any, **top: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "p", "namespace": "ai"},
        "spec": spec,
    }
    obj.update(top)
    return obj


def _errors(obj: Any) -> set[tuple[str, str]]:
    return {(e.field, e.message) for e in check_policy(obj)[1]}


def _spec_errors(**sections: Any) -> set[tuple[str, str]]:
    return _errors(_policy({"targetWorkloadSelector": SELECTOR, **sections}))


def test_the_seed_policy_is_valid() -> None:
    normalized, errors, enforceable = check_policy(_policy(copy.deepcopy(SEED_SPEC)))
    assert errors == []
    assert normalized["spec"] == SEED_SPEC
    assert enforceable is normalized


@pytest.mark.parametrize(
    ("sections", "field", "message"),
    [
        (
            {"costLimits": {"maxCPUCores": "8"}},
            "spec.costLimits.maxCPUCores",
            'must be a number greater than 0, got "8"',
        ),
        (
            {"costLimits": {"maxCPUCores": -1}},
            "spec.costLimits.maxCPUCores",
            "must be a number greater than 0, got -1",
        ),
        (
            {"costLimits": {"maxCPUCores": True}},
            "spec.costLimits.maxCPUCores",
            "must be a number greater than 0, got true",
        ),
        (
            {"costLimits": {"maxMemoryGB": 0}},
            "spec.costLimits.maxMemoryGB",
            "must be a number greater than 0, got 0",
        ),
        (
            {"costLimits": {"maxMemoryGB": "32Gi"}},
            "spec.costLimits.maxMemoryGB",
            'must be a number greater than 0, got "32Gi"',
        ),
        (
            {"costLimits": {"dailyGPUHours": 0}},
            "spec.costLimits.dailyGPUHours",
            "must be a number greater than 0, got 0",
        ),
        (
            {"costLimits": {"dailyGPUHours": -3}},
            "spec.costLimits.dailyGPUHours",
            "must be a number greater than 0, got -3",
        ),
        (
            {"costLimits": {"maxCPU": 8}},
            "spec.costLimits.maxCPU",
            "unknown field (known: dailyGPUHours, maxCPUCores, maxMemoryGB)",
        ),
        ({"costLimits": [8]}, "spec.costLimits", "must be an object, got [8]"),
        (
            {"optimizationRules": {"idleShutdownThresholdMinutes": -5}},
            "spec.optimizationRules.idleShutdownThresholdMinutes",
            "must be a whole number of at least 1, got -5",
        ),
        (
            {"optimizationRules": {"idleShutdownThresholdMinutes": 2.5}},
            "spec.optimizationRules.idleShutdownThresholdMinutes",
            "must be a whole number of at least 1, got 2.5",
        ),
        (
            {"optimizationRules": {"modelQuantizationRequired": "yes"}},
            "spec.optimizationRules.modelQuantizationRequired",
            'must be true or false, got "yes"',
        ),
        (
            {"autoScale": {"minReplicas": 1.5}},
            "spec.autoScale.minReplicas",
            "must be a whole number of at least 1, got 1.5",
        ),
        (
            {"autoScale": {"maxReplicas": 0}},
            "spec.autoScale.maxReplicas",
            "must be a whole number of at least 1, got 0",
        ),
        (
            {"autoScale": {"cpuUtilizationPercentage": "70%"}},
            "spec.autoScale.cpuUtilizationPercentage",
            'must be a whole number from 1 to 100, got "70%"',
        ),
        (
            {"autoScale": {"cpuUtilizationPercentage": 101}},
            "spec.autoScale.cpuUtilizationPercentage",
            "must be a whole number from 1 to 100, got 101",
        ),
        (
            {"autoScale": {"minReplicas": 4, "maxReplicas": 3}},
            "spec.autoScale.minReplicas",
            "must not exceed spec.autoScale.maxReplicas (4 > 3), so neither bound is enforced",
        ),
        (
            {"alerting": {"idleShutdown": "mlops"}},
            "spec.alerting.idleShutdown",
            'must be an object with severity and recipientGroup strings, got "mlops"',
        ),
        (
            {"alerting": {"thresholdExceeded": {"severity": 1}}},
            "spec.alerting.thresholdExceeded.severity",
            "must be a string, got 1",
        ),
        (
            {"alerting": {"thresholdExceeded": {"recipientGroup": ["a"]}}},
            "spec.alerting.thresholdExceeded.recipientGroup",
            'must be a string, got ["a"]',
        ),
        (
            {"alerting": {"thresholdExceeded": {"team": "x"}}},
            "spec.alerting.thresholdExceeded.team",
            "unknown field (known: recipientGroup, severity)",
        ),
        (
            {"alerting": {"pager": {}}},
            "spec.alerting.pager",
            "unknown field (known: idleShutdown, thresholdExceeded)",
        ),
        (
            {"costLimit": {"maxCPUCores": 8}},
            "spec.costLimit",
            "unknown field (known: alerting, autoScale, costLimits, optimizationRules, "
            "targetWorkloadSelector)",
        ),
    ],
)
def test_every_field_is_named_with_what_it_must_be(
    sections: dict[str, Any], field: str, message: str
) -> None:
    assert _spec_errors(**sections) == {(field, message)}


@pytest.mark.parametrize(
    ("selector", "field", "message"),
    [
        ("app=web", "spec.targetWorkloadSelector", 'must be an object, got "app=web"'),
        (
            {"matchLabel": {}},
            "spec.targetWorkloadSelector.matchLabel",
            "unknown field (known: matchExpressions, matchLabels)",
        ),
        (
            {"matchLabels": ["a"]},
            "spec.targetWorkloadSelector.matchLabels",
            'must be a map of strings, got ["a"]',
        ),
        (
            {"matchLabels": {"a": 1}},
            "spec.targetWorkloadSelector.matchLabels.a",
            f"must be {VALUE_RULE}, got 1",
        ),
        (
            {"matchLabels": {"app": "-web"}},
            "spec.targetWorkloadSelector.matchLabels.app",
            f'must be {VALUE_RULE}, got "-web"',
        ),
        (
            {"matchLabels": {"app": "a" * 64}},
            "spec.targetWorkloadSelector.matchLabels.app",
            f'must be {VALUE_RULE}, got "{"a" * 64}"',
        ),
        (
            {"matchLabels": {"app x": "web"}},
            "spec.targetWorkloadSelector.matchLabels",
            f'has the key "app x", which must be {KEY_RULE}',
        ),
        (
            {"matchLabels": {f"a/{'b' * 64}": "x"}},
            "spec.targetWorkloadSelector.matchLabels",
            f'has the key "a/{"b" * 64}", which must be {KEY_RULE}',
        ),
        (
            {"matchExpressions": {"key": "a"}},
            "spec.targetWorkloadSelector.matchExpressions",
            'must be a list, got {"key":"a"}',
        ),
        (
            {"matchExpressions": ["a"]},
            "spec.targetWorkloadSelector.matchExpressions[0]",
            'must be an object, got "a"',
        ),
        (
            {"matchExpressions": [{"operator": "Exists"}]},
            "spec.targetWorkloadSelector.matchExpressions[0].key",
            f"is required: {KEY_RULE}",
        ),
        (
            {"matchExpressions": [{"key": "Example.com/app", "operator": "Exists"}]},
            "spec.targetWorkloadSelector.matchExpressions[0].key",
            f'must be {KEY_RULE}, got "Example.com/app"',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]},
            "spec.targetWorkloadSelector.matchExpressions[0].operator",
            'must be one of DoesNotExist, Exists, In, NotIn, got "Equals"',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "spec.targetWorkloadSelector.matchExpressions[0].values",
            "operator In needs a non-empty list of values",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
            "spec.targetWorkloadSelector.matchExpressions[0].values",
            "operator NotIn needs a non-empty list of values",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]},
            "spec.targetWorkloadSelector.matchExpressions[0].values",
            "operator Exists takes no values",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]},
            "spec.targetWorkloadSelector.matchExpressions[0].values[0]",
            f"must be {VALUE_RULE}, got 1",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b c"]}]},
            "spec.targetWorkloadSelector.matchExpressions[0].values[0]",
            f'must be {VALUE_RULE}, got "b c"',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "foo": 1}]},
            "spec.targetWorkloadSelector.matchExpressions[0].foo",
            "unknown field (known: key, operator, values)",
        ),
    ],
)
def test_every_selector_problem_is_named_with_its_field(
    selector: Any, field: str, message: str
) -> None:
    assert _errors(_policy({"targetWorkloadSelector": selector})) == {(field, message)}


def test_valid_selectors_as_kubernetes_accepts_them() -> None:
    selector = {
        "matchLabels": {"app.kubernetes.io/name": "", "a": "A.b-c_9", f"a.b-c/{'x' * 63}": "y"},
        "matchExpressions": [
            {"key": "example.com/tier", "operator": "NotIn", "values": ["x", ""]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist", "values": []},
        ],
    }
    assert _errors(_policy({"targetWorkloadSelector": selector})) == set()


def test_the_object_its_name_and_its_spec_must_be_there() -> None:
    spec_required = "is required: an object with targetWorkloadSelector and the limits to enforce"
    selector_required = "is required: a label selector with matchLabels and/or matchExpressions"
    nameless = {**_policy({"targetWorkloadSelector": {}}), "metadata": {}}
    assert _errors(nameless) == {("metadata.name", "is required")}
    assert _errors(_policy(None)) == {("spec", spec_required)}
    assert _errors(_policy("x")) == {("spec", 'must be an object, got "x"')}
    assert _errors(_policy({})) == {("spec.targetWorkloadSelector", selector_required)}
    assert _errors(_policy({"targetWorkloadSelector": None})) == {
        ("spec.targetWorkloadSelector", selector_required)
    }


def test_fields_of_a_spec_at_the_top_are_told_to_belong_under_spec() -> None:
    obj = _policy(None, targetWorkloadSelector=SELECTOR, costLimits={"maxCPUCores": 1})
    del obj["spec"]
    known = "unknown field (known: apiVersion, kind, metadata, spec, status)"
    assert _errors(obj) == {
        ("spec", "is required: an object with targetWorkloadSelector and the limits to enforce"),
        ("targetWorkloadSelector", f"{known}; it belongs under spec"),
        ("costLimits", f"{known}; it belongs under spec"),
    }
    assert _errors({**_policy({"targetWorkloadSelector": {}}), "specs": {}}) == {("specs", known)}
    assert _errors({**_policy({"targetWorkloadSelector": {}}), "status": {"any": 1}}) == set()


def test_daily_gpu_hours_budgets_all_pods_so_any_positive_number_is_valid() -> None:
    for hours in (0.5, 24, 25, 72, 1000):
        assert _spec_errors(costLimits={"dailyGPUHours": hours}) == set()


def test_null_fields_are_absent_as_the_api_server_reads_them() -> None:
    obj = _policy(
        {
            "targetWorkloadSelector": {
                "matchLabels": None,
                "matchExpressions": [{"key": "gpu", "operator": "Exists", "values": None}],
            },
            "costLimits": None,
            "autoScale": {"minReplicas": None, "maxReplicas": 3},
            "alerting": {"idleShutdown": {"severity": None, "recipientGroup": "ops"}},
        }
    )
    normalized, errors, _ = check_policy(obj)
    assert errors == []
    assert normalized["spec"] == {
        "targetWorkloadSelector": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
        "autoScale": {"maxReplicas": 3},
        "alerting": {"idleShutdown": {"recipientGroup": "ops"}},
    }
    assert obj["spec"]["costLimits"] is None  # the input is not modified
    only_nulls = _policy(
        {"targetWorkloadSelector": {"matchLabels": None, "matchExpressions": None}}
    )
    assert check_policy(only_nulls)[0]["spec"] == {"targetWorkloadSelector": {}}
    # In and NotIn still need values: null values are absent values.
    in_without = {"matchExpressions": [{"key": "a", "operator": "In", "values": None}]}
    assert _errors(_policy({"targetWorkloadSelector": in_without})) == {
        (
            "spec.targetWorkloadSelector.matchExpressions[0].values",
            "operator In needs a non-empty list of values",
        )
    }
    # A null label value is no label value.
    assert _errors(_policy({"targetWorkloadSelector": {"matchLabels": {"a": None}}})) == {
        ("spec.targetWorkloadSelector.matchLabels.a", f"must be {VALUE_RULE}, got null")
    }


def test_the_enforceable_part_drops_invalid_fields_a_broken_selector_and_inverted_bounds() -> None:
    spec = {
        "targetWorkloadSelector": SELECTOR,
        "costLimits": {"maxCPUCores": -1, "maxMemoryGB": 4},
        "autoScale": {"minReplicas": 5, "maxReplicas": 3, "cpuUtilizationPercentage": 70},
    }
    _, errors, enforceable = check_policy(_policy(spec))
    assert len(errors) == 2
    assert enforceable["spec"] == {
        "targetWorkloadSelector": SELECTOR,
        "costLimits": {"maxMemoryGB": 4},
        "autoScale": {"cpuUtilizationPercentage": 70},
    }
    broken = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "a", "operator": "Is"}]}
    _, _, enforceable = check_policy(
        _policy({"targetWorkloadSelector": broken, "costLimits": {"maxCPUCores": 1}})
    )
    assert enforceable["spec"] == {"costLimits": {"maxCPUCores": 1}}


def test_validate_policies_splits_valid_and_invalid_and_skips_other_objects() -> None:
    good = _policy({"targetWorkloadSelector": SELECTOR})
    bad = {**_policy({"targetWorkloadSelector": SELECTOR, "costLimits": {"maxCPUCores": 0}})}
    bad["metadata"] = {"name": "bad"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    validated = validate_policies([good, bad, deployment], namespace_default="edge")
    assert validated.valid == (good,)
    (invalid,) = validated.invalid
    assert (invalid.kind, invalid.namespace, invalid.name) == ("FinOpsPolicy", "edge", "bad")
    assert invalid.to_document()["errors"] == [
        {
            "field": "spec.costLimits.maxCPUCores",
            "message": "must be a number greater than 0, got 0",
        }
    ]


def test_a_policy_kind_without_a_shipped_crd_is_not_trusted(crd_dir: Path) -> None:
    (crd_dir / "modelpolicies.yaml").unlink()
    crd_schema.kind_schemas.cache_clear()
    model = {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "ModelPolicy",
        "metadata": {"name": "m"},
        "spec": {},
    }
    (invalid,) = validate_policies([model]).invalid
    assert [e.message for e in invalid.errors] == [
        "edgepolicy ships no CRD for the kind ModelPolicy, so it cannot be validated"
    ]


@pytest.fixture
def crd_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shipped CRDs plus whatever a test writes, as the package data the validator reads."""
    for path in (Path(crd_schema.__file__).parent / "crds").glob("*.yaml"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(crd_schema, "_CRD_DIR", tmp_path)
    crd_schema.kind_schemas.cache_clear()
    yield tmp_path
    crd_schema.kind_schemas.cache_clear()


def test_a_new_policy_kind_needs_only_its_crd(crd_dir: Path) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgetpolicies.policy.apexlogic.com"},
        "spec": {
            "group": "policy.apexlogic.com",
            "names": {"kind": "GadgetPolicy", "plural": "gadgetpolicies"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": {
                                    "type": "object",
                                    "required": ["limit"],
                                    "properties": {
                                        "limit": {"type": "integer", "minimum": 1},
                                        "note": {"type": "string", "nullable": True},
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    (crd_dir / "gadgetpolicies.yaml").write_text(yaml.safe_dump(crd), encoding="utf-8")
    base = {"apiVersion": "policy.apexlogic.com/v1alpha1", "kind": "GadgetPolicy"}
    good = {**base, "metadata": {"name": "g"}, "spec": {"limit": 2, "note": None}}
    bad = {**base, "metadata": {"name": "h"}, "spec": {"limit": 0}}
    import edgepolicy.manifests as manifests

    kinds = manifests.POLICY_KINDS
    try:
        manifests.POLICY_KINDS = frozenset({*kinds, "GadgetPolicy"})
        validated = validate_policies([good, bad])
    finally:
        manifests.POLICY_KINDS = kinds
    assert [obj["metadata"]["name"] for obj in validated.valid] == ["g"]
    assert validated.valid[0]["spec"]["note"] is None  # nullable: kept
    assert [(e.field, e.message) for e in validated.invalid[0].errors] == [
        ("spec.limit", "must be a whole number of at least 1, got 0")
    ]


def test_whole_floats_are_read_as_integers_as_the_api_server_reads_them() -> None:
    normalized, errors, _ = check_policy(
        _policy({"targetWorkloadSelector": {}, "autoScale": {"minReplicas": 2.0, "maxReplicas": 3}})
    )
    assert errors == []
    assert normalized["spec"]["autoScale"] == {"minReplicas": 2, "maxReplicas": 3}
    assert isinstance(normalized["spec"]["autoScale"]["minReplicas"], int)
    inverted = _policy(
        {"targetWorkloadSelector": {}, "autoScale": {"minReplicas": 4.0, "maxReplicas": 3}}
    )
    assert _errors(inverted) == {
        (
            "spec.autoScale.minReplicas",
            "must not exceed spec.autoScale.maxReplicas (4 > 3), so neither bound is enforced",
        )
    }


def _model_policy_errors(**spec: Any) -> set[tuple[str, str]]:
    obj = _policy({"targetWorkloadSelector": SELECTOR, **spec}, kind="ModelPolicy")
    return _errors(obj)


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"biasThresholds": {}},
            "spec.biasThresholds",
            "must have at least 1 field, got {}",
        ),
        (
            {
                "signature": {
                    "identities": [{"issuer": "https://i", "subjectRegExp": "s"}],
                    "trustedRoot": "",
                }
            },
            "spec.signature.trustedRoot",
            'must be at least 2 characters long, got ""',
        ),
        (
            {"signature": {"identities": [{"issuer": "", "subjectRegExp": "s"}]}},
            "spec.signature.identities[0].issuer",
            'must be at least 1 character long, got ""',
        ),
    ],
)
def test_a_size_bound_says_the_bound_not_the_type(
    spec: dict[str, Any], field: str, message: str
) -> None:
    # {} is an object and "" a string: the message must say what is missing, not the type.
    assert (field, message) in _model_policy_errors(**spec)


GARBAGE_KEY = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
GARBAGE_CHAIN = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
IDENTITY = {"issuer": "https://issuer.example", "subjectRegExp": "ci@example[.]com"}


def _rsa_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def _ec_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


@pytest.mark.parametrize(
    ("signature", "field", "message"),
    [
        (
            {"publicKeys": [GARBAGE_KEY]},
            "spec.signature.publicKeys[0]",
            "must be a PEM elliptic-curve public key (P-256, P-384 or P-521): "
            "it is not a PEM public key",
        ),
        (
            {"publicKeys": [_rsa_public_key()]},
            "spec.signature.publicKeys[0]",
            "must be a PEM elliptic-curve public key (P-256, P-384 or P-521): "
            "it is not a P-256, P-384 or P-521 key",
        ),
        (
            {"certificateChains": [GARBAGE_CHAIN]},
            "spec.signature.certificateChains[0]",
            "must be PEM certificates, but none could be read",
        ),
        (
            {"identities": [{**IDENTITY, "subjectRegExp": "(("}]},
            "spec.signature.identities[0].subjectRegExp",
            'must be a regular expression, got "((": missing ), unterminated subpattern at '
            "position 1",
        ),
        (
            {"identities": [IDENTITY], "trustedRoot": "not json"},
            "spec.signature.trustedRoot",
            "must be a Sigstore trusted_root.json, got not JSON (Expecting value: line 1 "
            "column 1 (char 0))",
        ),
        (
            {"identities": [IDENTITY], "trustedRoot": "[]"},
            "spec.signature.trustedRoot",
            "must be a Sigstore trusted_root.json, got not an object",
        ),
    ],
)
def test_trust_the_verifier_cannot_use_is_named_by_policy_invalid(
    signature: dict[str, Any], field: str, message: str
) -> None:
    # The schema only sees shapes; a key, chain, expression or root that cannot work is an
    # error of the policy, not a surprise at the first signature.
    assert _model_policy_errors(signature={"required": True, **signature}) == {(field, message)}


def test_the_enforceable_part_keeps_the_usable_trust() -> None:
    good = _ec_public_key()
    obj = _policy(
        {
            "targetWorkloadSelector": SELECTOR,
            "signature": {"required": True, "publicKeys": [GARBAGE_KEY, good, GARBAGE_KEY]},
        },
        kind="ModelPolicy",
    )
    _, errors, enforceable = check_policy(obj)
    assert [error.field for error in errors] == [
        "spec.signature.publicKeys[0]",
        "spec.signature.publicKeys[2]",
    ]
    assert enforceable["spec"]["signature"]["publicKeys"] == [good]


def test_usable_trust_is_valid() -> None:
    signature = {"required": True, "publicKeys": [_ec_public_key()], "identities": [IDENTITY]}
    assert _model_policy_errors(signature=signature) == set()


def test_a_set_list_refuses_a_repeated_item_as_the_api_server_does() -> None:
    # requiredMetadata is `x-kubernetes-list-type: set`: the API server refuses duplicates.
    signature = {"required": True, "publicKeys": [_ec_public_key()]}
    errors = _model_policy_errors(signature=signature, requiredMetadata=["license", "license"])
    assert errors == {
        ("spec.requiredMetadata", 'must not repeat an item (a set), got ["license","license"]')
    }


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"signature": {"required": True}},
            "spec.signature.required",
            "needs at least one of publicKeys, certificateChains or identities to trust",
        ),
        (
            {"biasThresholds": {"demographicParityDifference": 0.1}},
            "spec.signature",
            "must trust at least one of publicKeys, certificateChains or identities, as "
            "biasThresholds, explainability.reportRequired and requiredMetadata are checked on "
            "verified facts only",
        ),
    ],
)
def test_a_cross_field_rule_message_reads_after_its_field(
    spec: dict[str, Any], field: str, message: str
) -> None:
    # policy.invalid prints "<field> <message>": the message must not repeat the field.
    assert (field, message) in _model_policy_errors(**spec)
