"""Check manifests against the policies through one real OPA: the engine of ``edgepolicy check``.

Every object is wrapped in the AdmissionReview the webhook would receive for it (CREATE) and
sent to the same REST decision endpoint the webhook queries. Policy objects among the inputs are
validated once against their CRD (:mod:`edgepolicy.validated_policies`), go into every input's
context (the valid ones and the invalid ones with their errors) and are themselves checked, so a
malformed one is reported; an HPA gets the workload its ``scaleTargetRef`` names and a workload
the HPAs that scale it (``context.workloads``), as the webhook would look them up in the
cluster. A workload's
model annotations are verified against every valid ModelPolicy of its namespace (inputs and
data) into ``context.models`` by :mod:`edgepolicy.model_context`, as the webhook does; a
``signature-configmap`` is found among the inputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgepolicy.decision import Decision, Finding
from edgepolicy.errors import InputError, OpaError, UsageError
from edgepolicy.input_builder import admission_review, decision_input, is_namespaced
from edgepolicy.manifests import Manifest, is_policy_object
from edgepolicy.model_context import (
    build_models,
    configmap_names,
    data_model_policies,
)
from edgepolicy.models.verifier import ModelVerifier
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_process import OpaProcess
from edgepolicy.policy_data import policy_key, with_namespace
from edgepolicy.rule_catalogue import RuleCatalogue
from edgepolicy.validated_policies import ValidatedPolicies, validate_policies
from edgepolicy.verification_keys import VerificationKey

BUNDLE_SUFFIXES = (".tar.gz", ".tgz")
CHECKED_KINDS = frozenset(
    {
        "Pod",
        "Deployment",
        "StatefulSet",
        "ReplicaSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "FinOpsPolicy",
        "ModelPolicy",
    }
)
_PARALLEL_REQUESTS = 4
_OPA_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class CheckResult:
    """The decision for one object of one file."""

    manifest: Manifest
    namespace: str
    decision: Decision
    seconds: float = 0.0  # how long OPA took to decide it

    @property
    def file(self) -> str:
        """The file the object came from."""
        return self.manifest.path

    @property
    def index(self) -> int:
        """The object's position in its file, from 0."""
        return self.manifest.index

    @property
    def line(self) -> int | None:
        """The line where the object starts in its file."""
        return self.manifest.line

    @property
    def api_version(self) -> str:
        """The object's apiVersion."""
        return str(self.manifest.obj.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        """The object's kind."""
        return str(self.manifest.obj.get("kind", ""))

    @property
    def name(self) -> str:
        """The object's name (its generateName prefix when it has no name)."""
        metadata = self.manifest.obj.get("metadata") or {}
        return str(metadata.get("name") or metadata.get("generateName") or "")

    @property
    def is_checked_kind(self) -> bool:
        """Whether edgepolicy has rules for this kind (others are allowed untouched)."""
        return self.kind in CHECKED_KINDS

    @property
    def is_policy(self) -> bool:
        """Whether the object is a FinOpsPolicy or ModelPolicy (checked for being well formed)."""
        return is_policy_object(self.manifest.obj)

    @property
    def denied(self) -> bool:
        """Whether the object would be refused."""
        return not self.decision.allowed

    @property
    def violations(self) -> tuple[Finding, ...]:
        """The findings that deny the object."""
        return self.decision.violations

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings that only warn."""
        return self.decision.warnings


@dataclass(frozen=True)
class CheckReport:
    """The results of one check run, in input order.

    With ``fail_on_warn`` an object with warnings fails the run as a denied one does.
    ``started_at`` (UTC) and ``seconds`` say when the run started and how long it took;
    ``rules`` describes the policy's rules (filled in for the reports that show them).
    """

    results: tuple[CheckResult, ...]
    fail_on_warn: bool = False
    started_at: datetime | None = None
    seconds: float = 0.0
    rules: RuleCatalogue = dataclasses.field(default_factory=RuleCatalogue)

    @property
    def denied(self) -> int:
        """How many objects would be refused."""
        return sum(1 for result in self.results if result.denied)

    @property
    def warned(self) -> int:
        """How many objects have at least one warning."""
        return sum(1 for result in self.results if result.warnings)

    def fails(self, result: CheckResult) -> bool:
        """Whether ``result`` fails the run: denied, or warned with ``fail_on_warn``."""
        return result.denied or (self.fail_on_warn and bool(result.warnings))

    def exit_code(self) -> int:
        """Return 1 when some object fails the run (see :meth:`fails`), else 0."""
        return 1 if any(self.fails(result) for result in self.results) else 0


@dataclass(frozen=True)
class PolicySource:
    """Where the Rego comes from: a directory of Rego files or a bundle tarball.

    A directory is loaded file by file (its ``.rego``, ``.json`` and ``.yaml`` files), a
    tarball as an OPA bundle.
    """

    path: Path
    is_bundle: bool

    @classmethod
    def from_path(cls, path: Path) -> PolicySource:
        """Classify ``--policy``.

        Raises:
            UsageError: the path does not exist, or is a file that is not a .tar.gz bundle.
        """
        if path.is_dir():
            return cls(path, is_bundle=False)
        if path.is_file() and path.name.endswith(BUNDLE_SUFFIXES):
            return cls(path, is_bundle=True)
        if path.exists():
            raise UsageError(f"{path}: expected a directory of Rego files or a bundle .tar.gz")
        raise UsageError(f"{path}: no such file or directory")


def check_manifests(
    manifests: Sequence[Manifest],
    *,
    opa_binary: Path,
    policy: PolicySource,
    data: Mapping[str, Any] | None = None,
    namespace: str = "default",
    verification_key: VerificationKey | None = None,
) -> CheckReport:
    """Decide every manifest with one OPA started for the run (a :class:`CheckSession`).

    The report's ``seconds`` include starting OPA.

    Raises:
        InputError: a policy object among the inputs has no name, or two share kind,
            namespace and name (the message names the files and lines), before OPA starts.
        UsageError: ``data`` sets values a bundle owns, a signed bundle comes without a key,
            or a key comes without a bundle.
        OpaError: OPA failed to start, refused the bundle, or returned an unusable answer.
    """
    started = time.perf_counter()
    prepared = _prepare(manifests, namespace)
    session = CheckSession(
        opa_binary=opa_binary, policy=policy, data=data, verification_key=verification_key
    )
    with session:
        report = session.decide(prepared)
    return dataclasses.replace(report, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class PreparedCheck:
    """Manifests read for deciding: objects with their default namespace, the policy objects
    among them validated once (every input's context), the index of what HPAs scale and the
    ConfigMaps model signatures may be in (checked before OPA starts; the decision inputs are
    built by :meth:`CheckSession.decide`)."""

    manifests: tuple[Manifest, ...]
    objects: tuple[dict[str, Any], ...]
    namespace: str
    policies: ValidatedPolicies
    index: WorkloadIndex
    configmaps: Mapping[tuple[str, str], Mapping[str, Any]]


def _prepare(manifests: Sequence[Manifest], namespace: str) -> PreparedCheck:
    """Read ``manifests`` for deciding (see :class:`PreparedCheck`).

    Raises:
        InputError: see :func:`_check_policy_names`.
    """
    objects = [_with_default_namespace(manifest.obj, namespace) for manifest in manifests]
    _check_policy_names(manifests, objects)
    # Each policy is validated once, here; every input's context carries the result.
    policies = validate_policies(objects, namespace_default=namespace)
    index = WorkloadIndex(obj for obj in objects if not is_policy_object(obj))
    return PreparedCheck(
        tuple(manifests), tuple(objects), namespace, policies, index, _configmaps(objects)
    )


class CheckSession:
    """One OPA started with the policy and data, deciding one or more sets of manifests.

    A context manager: OPA runs from entry to exit. :meth:`check` decides one set of
    manifests as ``edgepolicy check`` would decide them alone (the objects of a set are each
    other's context; sets never see each other), so several test cases share one OPA.
    """

    def __init__(
        self,
        *,
        opa_binary: Path,
        policy: PolicySource,
        data: Mapping[str, Any] | None = None,
        verification_key: VerificationKey | None = None,
    ) -> None:
        """Describe the session; OPA starts on entry.

        Raises:
            UsageError: ``data`` sets values a bundle owns, a signed bundle comes without a
                key, or a key comes without a bundle.
        """
        if verification_key is not None and not policy.is_bundle:
            raise UsageError(
                f"{policy.path}: a verification key applies to a signed bundle (.tar.gz), "
                "not to a directory of Rego files"
            )
        paths = [] if policy.is_bundle else [policy.path]
        bundles = [policy.path] if policy.is_bundle else []
        self._opa = OpaProcess(
            opa_binary, paths=paths, bundles=bundles, data=data, verification_key=verification_key
        )
        self._client: OpaClient | None = None
        # One cache for the session: cases that share a model verify it once.
        self._verifier = ModelVerifier()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> CheckSession:
        """Start OPA.

        Raises:
            OpaError: OPA failed to start or refused the bundle.
        """
        with contextlib.ExitStack() as stack:
            opa = stack.enter_context(self._opa)
            client = OpaClient(opa.url, timeout=_OPA_TIMEOUT_SECONDS, maxsize=_PARALLEL_REQUESTS)
            stack.callback(client.close)
            self._client = client
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop OPA."""
        self._client = None
        self._stack.close()

    @property
    def client(self) -> OpaClient:
        """The client of the session's OPA (for callers that build their own inputs, such as
        ``edgepolicy audit``).

        Raises:
            OpaError: the session is not started.
        """
        if self._client is None:
            raise OpaError("the check session is not started (use it as a context manager)")
        return self._client

    def check(self, manifests: Sequence[Manifest], *, namespace: str = "default") -> CheckReport:
        """Decide ``manifests`` (objects without a namespace get ``namespace``).

        Raises:
            InputError: a policy object has no name, or two share kind, namespace and name.
            OpaError: OPA returned an unusable answer or stopped answering.
        """
        return self.decide(_prepare(manifests, namespace))

    def decide(self, prepared: PreparedCheck) -> CheckReport:
        """Build the decision inputs the webhook would build for the prepared objects (the
        others as their context) and decide them (see :meth:`check`).

        Raises:
            OpaError: OPA returned an unusable answer or stopped answering.
        """
        client = self._client
        if client is None:
            raise OpaError("the check session is not started (use it as a context manager)")
        started_at = datetime.now(UTC)
        started = time.perf_counter()

        def timed(decision_input: dict[str, Any]) -> tuple[Decision, float]:
            begin = time.perf_counter()
            decision = client.decide(decision_input)
            return decision, time.perf_counter() - begin

        # The ModelPolicies of OPA's data (a bundle's) and of the inputs verify the annotations.
        model_policies = [*data_model_policies(client), *prepared.policies.valid]
        inputs = [
            decision_input(
                admission_review(
                    obj, namespace_default=prepared.namespace, username="edgepolicy-check"
                ),
                policies=prepared.policies,
                workloads=prepared.index.related(obj),
                models=_models(obj, model_policies, self._verifier, prepared.configmaps) or None,
            )
            for obj in prepared.objects
        ]
        with ThreadPoolExecutor(max_workers=_PARALLEL_REQUESTS) as pool:
            answers = list(pool.map(timed, inputs))
        results = tuple(
            CheckResult(manifest, _namespace_of(obj), decision, seconds=seconds)
            for manifest, obj, (decision, seconds) in zip(
                prepared.manifests, prepared.objects, answers, strict=True
            )
        )
        return CheckReport(results, started_at=started_at, seconds=time.perf_counter() - started)


def _configmaps(objects: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The ConfigMaps among the inputs by (namespace, name): where a pod's
    ``models.apexlogic.com/signature-configmap`` is found, as the webhook finds it in the
    cluster."""
    return {
        (_namespace_of(obj), _name_of(obj)): obj
        for obj in objects
        if obj.get("kind") == "ConfigMap" and obj.get("apiVersion") == "v1"
    }


def _models(
    obj: Mapping[str, Any],
    model_policies: Sequence[Mapping[str, Any]],
    verifier: ModelVerifier,
    configmaps: Mapping[tuple[str, str], Mapping[str, Any]],
) -> dict[str, Any]:
    """``context.models`` for ``obj``."""
    namespace = _namespace_of(obj)
    named = {name: configmaps.get((namespace, name)) for name in configmap_names(obj)}
    return build_models(obj, namespace, model_policies, verifier, named)


def _check_policy_names(
    manifests: Sequence[Manifest], objects: Sequence[Mapping[str, Any]]
) -> None:
    """Refuse a nameless policy object, or two of one kind with one namespace and name (one
    would silently replace the other), before OPA starts.

    Raises:
        InputError: naming the file and line of the object at fault (and of the first one).
    """
    first: dict[tuple[str, str, str], Manifest] = {}
    for manifest, obj in zip(manifests, objects, strict=True):
        if not is_policy_object(obj):
            continue
        kind = str(obj["kind"])
        try:
            namespace, name = policy_key(obj)
        except InputError as error:
            raise InputError(str(error), path=manifest.path, line=manifest.line) from error
        earlier = first.setdefault((kind, namespace, name), manifest)
        if earlier is not manifest:
            where = f"{earlier.path}:{earlier.line}" if earlier.line else earlier.path
            raise InputError(
                f"duplicate {kind} {namespace}/{name} (also defined at {where}): each policy "
                "needs its own name",
                path=manifest.path,
                line=manifest.line,
            )


class WorkloadIndex:
    """The objects of a run, indexed to find what an object's HPA rule needs, as the webhook
    would find it in the cluster: for a HorizontalPodAutoscaler the objects its
    ``scaleTargetRef`` names, for any other object the HPAs whose ``scaleTargetRef`` names it.
    Matching is by namespace, kind and name only; the Rego decides the rest."""

    def __init__(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Index ``objects`` by namespace, kind and name, and HPAs by what they scale."""
        self._by_key: dict[tuple[str, Any, Any], list[Mapping[str, Any]]] = {}
        self._hpas_by_target: dict[tuple[str, Any, Any], list[Mapping[str, Any]]] = {}
        for obj in objects:
            key = (_namespace_of(obj), obj.get("kind"), _name_of(obj))
            self._by_key.setdefault(key, []).append(obj)
            ref = _scale_target_ref(obj)
            if ref is not None:
                target = (_namespace_of(obj), ref.get("kind"), ref.get("name"))
                self._hpas_by_target.setdefault(target, []).append(obj)

    def related(self, obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Return the other indexed objects ``obj``'s HPA rule needs (see the class)."""
        ref = _scale_target_ref(obj)
        if ref is not None:
            key = (_namespace_of(obj), ref.get("kind"), ref.get("name"))
            candidates = self._by_key.get(key, [])
        else:
            target = (_namespace_of(obj), obj.get("kind"), _name_of(obj))
            candidates = self._hpas_by_target.get(target, [])
        return [other for other in candidates if other is not obj]


def _scale_target_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if obj.get("kind") != "HorizontalPodAutoscaler":
        return None
    spec = obj.get("spec")
    ref = spec.get("scaleTargetRef") if isinstance(spec, Mapping) else None
    return ref if isinstance(ref, Mapping) else None


def _with_default_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    if not is_namespaced(str(obj.get("kind", ""))) or _namespace_of(obj):
        return obj
    return with_namespace(obj, namespace)


def _namespace_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("namespace") or "") if isinstance(metadata, Mapping) else ""


def _name_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("name") or "") if isinstance(metadata, Mapping) else ""
