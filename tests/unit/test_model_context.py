"""context.models from annotations, verified by the real verifier against real signatures: only a
signature that verifies against a policy's trust ever yields facts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgepolicy import model_context
from edgepolicy.errors import OpaError, OpaUnavailableError
from edgepolicy.model_context import build_models, configmap_names, declared_models
from edgepolicy.models.verifier import ModelVerifier

NS = "ai"


def _policy(name: str, signature: dict[str, Any] | None, namespace: str = NS) -> dict[str, Any]:
    spec: dict[str, Any] = {"targetWorkloadSelector": {"matchLabels": {"app": "inf"}}}
    if signature is not None:
        spec["signature"] = signature
    return {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "ModelPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _trusting(name: str, *keys: str) -> dict[str, Any]:
    return _policy(name, {"required": True, "publicKeys": list(keys)})


def _deployment(annotations: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "inference", "namespace": NS},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "inf"}, "annotations": annotations},
                "spec": {"containers": [{"name": "server", "image": "x"}]},
            }
        },
    }


def _annotations(model: Any, suffix: str = "") -> dict[str, str]:
    return {
        f"models.apexlogic.com/signature{suffix}": model.signature,
        f"models.apexlogic.com/facts{suffix}": model.facts,
    }


def _build(
    obj: dict[str, Any],
    policies: list[dict[str, Any]],
    configmaps: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    return build_models(obj, NS, policies, ModelVerifier(), configmaps or {})


def _assert_facts_only_when_verified(context: dict[str, dict[str, Any]]) -> None:
    for outcomes in context.values():
        for outcome in outcomes.values():
            assert ("facts" in outcome) is (outcome["verified"] is True)
            assert ("reason" in outcome) is (outcome["verified"] is False)


def test_a_signature_verified_against_the_policy_gives_the_exact_facts_text(
    signed_model: Any,
) -> None:
    context = _build(
        _deployment(_annotations(signed_model)), [_trusting("p", signed_model.public_key)]
    )
    outcome = context["ai/p"]["default"]
    assert outcome["verified"] is True
    assert outcome["facts"] == signed_model.facts  # the very text whose digest was signed
    assert outcome["signer"].startswith("SHA256:")


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (
            lambda a: {
                **a,
                "models.apexlogic.com/facts": a["models.apexlogic.com/facts"].replace(
                    "int8", "int4"
                ),
            },
            "facts digest is not among the signed files",
        ),
        (lambda a: {**a, "models.apexlogic.com/signature": "{not json"}, "signature is malformed"),
        (lambda a: {"models.apexlogic.com/facts": a["models.apexlogic.com/facts"]}, "no signature"),
        (
            lambda a: {"models.apexlogic.com/signature": a["models.apexlogic.com/signature"]},
            "no facts: models.apexlogic.com/facts is not set beside the signature",
        ),
        (lambda a: {**a, "models.apexlogic.com/facts": 3}, "is not a string"),
        (lambda a: {**a, "models.apexlogic.com/signature-configmap": "sig"}, "set one"),
        (
            lambda a: {**a, "models.apexlogic.com/signature.default": "{}"},
            "model 'default' is named twice",
        ),
    ],
)
def test_annotations_failing_verification_never_produce_facts(
    signed_model: Any, tamper: Any, reason: str
) -> None:
    obj = _deployment(tamper(_annotations(signed_model)))
    context = _build(obj, [_trusting("p", signed_model.public_key)])
    outcome = context["ai/p"]["default"]
    assert outcome["verified"] is False
    assert "facts" not in outcome
    assert reason in outcome["reason"]


def test_a_signature_by_a_key_the_policy_does_not_trust_gives_no_facts(
    signed_model: Any, other_signed_model: Any
) -> None:
    policies = [
        _trusting("mine", signed_model.public_key),
        _trusting("theirs", other_signed_model.public_key),
    ]
    context = _build(_deployment(_annotations(signed_model)), policies)
    assert context["ai/mine"]["default"]["verified"] is True
    theirs = context["ai/theirs"]["default"]
    assert theirs == {"verified": False, "reason": theirs["reason"]}
    assert "signed by nobody the policy trusts" in theirs["reason"]


def test_a_signature_for_another_model_gives_no_facts(
    signed_model: Any, other_signed_model: Any
) -> None:
    swapped = {
        "models.apexlogic.com/signature": other_signed_model.signature,
        "models.apexlogic.com/facts": signed_model.facts,
    }
    policy = _trusting("p", signed_model.public_key, other_signed_model.public_key)
    context = _build(_deployment(swapped), [policy])
    assert context["ai/p"]["default"]["verified"] is False
    _assert_facts_only_when_verified(context)


def test_every_policy_of_the_namespace_gets_outcomes_others_are_ignored(signed_model: Any) -> None:
    policies = [
        _trusting("p", signed_model.public_key),
        _policy("no-trust", {"required": True}),
        _policy("no-signature", None),
        _policy("broken", {"publicKeys": "not a list"}),
        _trusting("elsewhere", signed_model.public_key)
        | {"metadata": {"name": "x", "namespace": "b"}},
        {"kind": "FinOpsPolicy", "metadata": {"name": "cost", "namespace": NS}},
    ]
    context = _build(_deployment(_annotations(signed_model)), policies)
    assert set(context) == {"ai/p", "ai/no-trust", "ai/no-signature", "ai/broken"}
    assert "trusts no signer" in context["ai/no-trust"]["default"]["reason"]
    assert "trusts no signer" in context["ai/no-signature"]["default"]["reason"]
    assert "spec.signature.publicKeys: expected a list" in context["ai/broken"]["default"]["reason"]
    _assert_facts_only_when_verified(context)


def test_several_models_are_verified_one_by_one(signed_model: Any, other_signed_model: Any) -> None:
    annotations = {
        **_annotations(signed_model, ".llm"),
        **_annotations(other_signed_model, ".ranker"),
    }
    annotations["models.apexlogic.com/facts.ranker"] += " "  # edited after signing
    obj = _deployment(annotations)
    assert set(declared_models(obj)) == {"llm", "ranker"}
    policy = _trusting("p", signed_model.public_key, other_signed_model.public_key)
    outcomes = _build(obj, [policy])["ai/p"]
    assert outcomes["llm"]["verified"] is True
    assert outcomes["ranker"]["verified"] is False


def test_the_signature_can_come_from_a_configmap(signed_model: Any) -> None:
    obj = _deployment(
        {
            "models.apexlogic.com/signature-configmap": "model-sig",
            "models.apexlogic.com/facts": signed_model.facts,
        }
    )
    assert configmap_names(obj) == {"model-sig"}
    policy = [_trusting("p", signed_model.public_key)]
    found = {"model-sig": {"data": {"signature": signed_model.signature}}}
    assert _build(obj, policy, found)["ai/p"]["default"]["verified"] is True
    missing = _build(obj, policy, {"model-sig": None})["ai/p"]["default"]
    assert missing["reason"] == (
        "ConfigMap ai/model-sig (models.apexlogic.com/signature-configmap) is not found"
    )
    keyless = _build(obj, policy, {"model-sig": {"data": {"other": "x"}}})["ai/p"]["default"]
    assert "has no 'signature' key" in keyless["reason"]
    facts_too = _deployment({"models.apexlogic.com/signature-configmap": "model-sig"})
    both = {
        "model-sig": {"data": {"signature": signed_model.signature, "facts": signed_model.facts}}
    }
    assert _build(facts_too, policy, both)["ai/p"]["default"]["verified"] is True


def test_pods_and_cronjobs_are_read_from_their_pod_metadata(signed_model: Any) -> None:
    pod = {"kind": "Pod", "metadata": {"annotations": _annotations(signed_model)}}
    cronjob = {
        "kind": "CronJob",
        "spec": {
            "jobTemplate": {
                "spec": {"template": {"metadata": {"annotations": _annotations(signed_model)}}}
            }
        },
    }
    for obj in (pod, cronjob):
        assert set(declared_models(obj)) == {"default"}
    assert (
        declared_models(
            {"kind": "Service", "metadata": {"annotations": _annotations(signed_model)}}
        )
        == {}
    )


def test_nothing_to_verify_gives_no_context(signed_model: Any) -> None:
    assert _build(_deployment({"other": "x"}), [_trusting("p", signed_model.public_key)]) == {}
    assert _build(_deployment(_annotations(signed_model)), []) == {}


class _Data:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.paths: list[str] = []

    def query(self, path: str, input_doc: Any = None) -> Any:
        self.paths.append(path)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_model_policies_in_opa_data() -> None:
    policy = _policy("p", None)
    source = _Data({"p": policy, "bad": "x"})
    assert model_context.data_model_policies(source, NS) == [policy]
    assert source.paths == ["edgepolicy/policies/model/ai"]
    assert model_context.data_model_policies(_Data({NS: {"p": policy}})) == [policy]
    assert model_context.data_model_policies(_Data(OpaError("OPA has no value"))) == []
    with pytest.raises(OpaUnavailableError):
        model_context.data_model_policies(_Data(OpaUnavailableError("down")))


def test_outcomes_are_json(signed_model: Any) -> None:
    context = _build(
        _deployment(_annotations(signed_model)), [_trusting("p", signed_model.public_key)]
    )
    assert json.loads(json.dumps(context)) == context


def test_the_namespace_is_one_quoted_path_segment() -> None:
    # A namespace comes from the admitted review: it must not reach OPA as request syntax.
    source = _Data({})
    model_context.data_model_policies(source, "a/b HTTP/1.1\r\n\r\nGET /x")
    assert source.paths == ["edgepolicy/policies/model/a%2Fb%20HTTP%2F1.1%0D%0A%0D%0AGET%20%2Fx"]
