"""Build ``context.models``: the verified model facts of a workload, per ModelPolicy.

Python verifies; Rego decides. A workload names its models with pod-template (a Pod's own)
annotations; for EACH ModelPolicy of its namespace the annotations are verified against that
policy's trust (:class:`edgepolicy.models.verifier.ModelVerifier`, cached), and the outcome is
recorded under the policy's id whether or not its selector matches: matching is Rego's job, and
the Rego uses only the outcomes of the policies that apply. An outcome carries facts only when
the signature verified; anything else is ``{"verified": false, "reason": ...}`` and counts for
nothing. ``edgepolicy check`` and the webhook both build the context here, so CI and admission
agree. Shape and annotation forms: docs/decision-contract.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from edgepolicy.errors import ModelTrustError, OpaError, OpaUnavailableError
from edgepolicy.models.trust import ModelTrust
from edgepolicy.models.verifier import ModelVerifier

ANNOTATION_PREFIX = "models.apexlogic.com/"
SIGNATURE = "signature"
FACTS = "facts"
SIGNATURE_CONFIGMAP = "signature-configmap"
# The keys of the ConfigMap that `signature-configmap` names.
CONFIGMAP_SIGNATURE_KEY = "signature"
CONFIGMAP_FACTS_KEY = "facts"
# The model named by the annotations without a `.<name>` suffix.
DEFAULT_MODEL = "default"
_FORMS = (SIGNATURE, FACTS, SIGNATURE_CONFIGMAP)
# Where each workload kind keeps its pod template (the Rego's rego/lib/workload agrees).
_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": (),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
_TEMPLATED_KINDS = frozenset(
    {"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "CronJob", "Pod"}
)

Outcome = dict[str, Any]


@dataclass(frozen=True)
class ModelAnnotations:
    """What a workload's annotations say about one model (None where an annotation is absent)."""

    name: str
    signature: str | None = None
    facts: str | None = None
    configmap: str | None = None
    problem: str | None = None  # an annotation that is not a string, named


def preload_verification() -> None:
    """Import what verifying a signature needs (model-signing, sigstore: about 1.5 s). The
    webhook's gunicorn master calls it before it forks (``edgepolicy.webhook.prefork``), so a
    worker's first model is verified within its admission deadline and the workers share the
    modules. Never raises: without the ``models`` extra every verification fails closed with
    the reason."""
    import importlib

    for module in (
        "model_signing._signing.signing",
        "model_signing._signing.sign_ec_key",
        "model_signing._signing.sign_certificate",
        "model_signing._signing.sign_sigstore",
    ):
        try:
            importlib.import_module(module)
        except Exception:  # a missing extra: each verification reports it
            return


def annotation(name: str, form: str) -> str:
    """Return the annotation key of ``form`` (``signature``, ``facts``,
    ``signature-configmap``) for model ``name``."""
    suffix = "" if name == DEFAULT_MODEL else f".{name}"
    return f"{ANNOTATION_PREFIX}{form}{suffix}"


def pod_annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the annotations of the pods ``obj`` creates (``{}`` for other kinds or none)."""
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in _TEMPLATED_KINDS:
        return {}
    node: Any = obj
    for key in (*_TEMPLATE_PATHS.get(str(kind), ("spec", "template")), "metadata", "annotations"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def declared_models(obj: Mapping[str, Any]) -> dict[str, ModelAnnotations]:
    """Return the models ``obj``'s pod annotations name, by model name."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in pod_annotations(obj).items():
        if not isinstance(key, str) or not key.startswith(ANNOTATION_PREFIX):
            continue
        rest = key[len(ANNOTATION_PREFIX) :]
        for form in _FORMS:
            if rest == form:
                name = DEFAULT_MODEL
            elif rest.startswith(f"{form}.") and len(rest) > len(form) + 1:
                name = rest[len(form) + 1 :]
            else:
                continue
            fields = found.setdefault(name, {})
            if form in fields:  # `signature` and `signature.default` name one model
                fields["problem"] = f"model {name!r} is named twice ({key} and the other form)"
            elif isinstance(value, str):
                fields[form] = value
            else:
                fields["problem"] = f"annotation {key} is not a string"
    return {
        name: ModelAnnotations(
            name=name,
            signature=fields.get(SIGNATURE),
            facts=fields.get(FACTS),
            configmap=fields.get(SIGNATURE_CONFIGMAP),
            problem=fields.get("problem"),
        )
        for name, fields in found.items()
    }


def configmap_names(obj: Mapping[str, Any]) -> set[str]:
    """Return the names of the ConfigMaps ``obj``'s models are signed in (to be looked up)."""
    return {m.configmap for m in declared_models(obj).values() if m.configmap}


def build_models(
    obj: Mapping[str, Any],
    namespace: str,
    model_policies: Iterable[Mapping[str, Any]],
    verifier: ModelVerifier,
    configmaps: Mapping[str, Mapping[str, Any] | None],
) -> dict[str, dict[str, Outcome]]:
    """Return ``context.models`` for ``obj`` in ``namespace``: ``{policy id: {model: outcome}}``
    for every ModelPolicy of ``namespace`` among ``model_policies`` (the others are ignored);
    ``{}`` when ``obj`` names no model.

    ``configmaps`` maps the names :func:`configmap_names` returned to the ConfigMap objects
    found (None: not found). Never raises for bad annotations, ConfigMaps or policies: each
    becomes an unverified outcome with the reason.
    """
    declared = declared_models(obj)
    policies = _policies_in(namespace, model_policies)
    if not policies or not declared:
        return {}  # nothing to verify: the Rego finds no model, or no policy to apply
    texts = {name: _texts(model, configmaps, namespace) for name, model in declared.items()}
    context: dict[str, dict[str, Outcome]] = {}
    for policy_id, policy in policies.items():
        trust, problem = _trust(policy_id, policy)
        outcomes: dict[str, Outcome] = {}
        for name, (signature, facts, reason) in texts.items():
            if reason is None and problem is not None:
                reason = problem
            if reason is not None or signature is None or facts is None:
                outcomes[name] = _unverified(reason or "no signature")
                continue
            assert trust is not None  # no problem means a trust
            result = verifier.verify(signature, facts, trust)
            outcomes[name] = (
                {"verified": True, "signer": result.signer, "facts": facts}
                if result.verified
                else _unverified(result.reason)
            )
        context[policy_id] = outcomes
    return context


class DataSource(Protocol):
    """Reads OPA's data (implemented by :class:`edgepolicy.opa_client.OpaClient`)."""

    def query(self, path: str, input_doc: Mapping[str, Any] | None = None) -> Any: ...


def data_model_policies(opa: DataSource, namespace: str | None = None) -> list[dict[str, Any]]:
    """Return the ModelPolicies in OPA's ``data.edgepolicy.policies.model`` (bundles,
    ``serve --policies``), of ``namespace`` only when given.

    A document OPA does not have, or cannot give, is no policies: the Rego then finds no outcome
    for such a policy and fails closed.

    Raises:
        OpaUnavailableError: OPA refused the connection or did not answer in time.
    """
    path = "edgepolicy/policies/model" + (f"/{quote(namespace, safe='')}" if namespace else "")
    try:
        found = opa.query(path)
    except OpaUnavailableError:
        raise
    except OpaError:
        return []
    by_namespace = {namespace: found} if namespace else found
    if not isinstance(by_namespace, Mapping):
        return []
    return [
        policy
        for policies in by_namespace.values()
        if isinstance(policies, Mapping)
        for policy in policies.values()
        if isinstance(policy, dict)
    ]


def _policies_in(
    namespace: str, model_policies: Iterable[Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """The ModelPolicies of ``namespace`` by id (the last of one id wins, as in the Rego)."""
    found: dict[str, Mapping[str, Any]] = {}
    for policy in model_policies:
        metadata = policy.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        name, policy_namespace = metadata.get("name"), metadata.get("namespace") or "default"
        is_named = isinstance(name, str) and bool(name)
        if policy.get("kind") == "ModelPolicy" and is_named and policy_namespace == namespace:
            found[f"{namespace}/{name}"] = policy
    return found


def _trust(policy_id: str, policy: Mapping[str, Any]) -> tuple[ModelTrust | None, str | None]:
    """The policy's trust, or why there is none usable (a reason for its outcomes)."""
    spec = policy.get("spec")
    signature = spec.get("signature") if isinstance(spec, Mapping) else None
    try:
        trust = ModelTrust.from_signature_spec(signature if signature is not None else {})
    except ModelTrustError as error:
        return None, f"ModelPolicy {policy_id} has an unusable trust: {error}"
    if trust.is_empty:
        return None, (
            f"ModelPolicy {policy_id} trusts no signer (spec.signature has no publicKeys, "
            "certificateChains or identities)"
        )
    return trust, None


def _texts(
    model: ModelAnnotations, configmaps: Mapping[str, Mapping[str, Any] | None], namespace: str
) -> tuple[str | None, str | None, str | None]:
    """Return (signature, facts, reason): the texts to verify, or why they cannot be."""
    if model.problem is not None:
        return None, None, model.problem
    signature_key = annotation(model.name, SIGNATURE)
    configmap_key = annotation(model.name, SIGNATURE_CONFIGMAP)
    facts_key = annotation(model.name, FACTS)
    signature, facts = model.signature, model.facts
    if model.configmap is not None:
        if signature is not None:
            return None, None, f"both {signature_key} and {configmap_key} are set; set one"
        data, reason = _configmap_data(model.configmap, configmaps, namespace, configmap_key)
        if reason is not None:
            return None, None, reason
        signature = data.get(CONFIGMAP_SIGNATURE_KEY)
        if not isinstance(signature, str):
            return (
                None,
                None,
                (
                    f"ConfigMap {namespace}/{model.configmap} ({configmap_key}) has no "
                    f"{CONFIGMAP_SIGNATURE_KEY!r} key"
                ),
            )
        if facts is None and isinstance(data.get(CONFIGMAP_FACTS_KEY), str):
            facts = data[CONFIGMAP_FACTS_KEY]
    if signature is None:
        return None, None, f"no signature: {signature_key} (or {configmap_key}) is not set"
    if facts is None:
        return None, None, f"no facts: {facts_key} is not set beside the signature"
    return signature, facts, None


def _configmap_data(
    name: str,
    configmaps: Mapping[str, Mapping[str, Any] | None],
    namespace: str,
    configmap_key: str,
) -> tuple[Mapping[str, Any], str | None]:
    found = configmaps.get(name)
    if found is None:
        return {}, f"ConfigMap {namespace}/{name} ({configmap_key}) is not found"
    data = found.get("data")
    return (data if isinstance(data, Mapping) else {}), None


def _unverified(reason: str) -> Outcome:
    return {"verified": False, "reason": reason}
