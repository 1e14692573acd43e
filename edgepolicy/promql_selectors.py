"""A FinOpsPolicy's ``targetWorkloadSelector`` as PromQL label matchers on kube-state-metrics'
``kube_pod_labels``, whose pod labels are ``label_<name>`` series labels.

This is a translation, not a second decision: the selection semantics are those of the Rego
library (``rego/lib/selector``, Kubernetes' ``LabelSelectorAsSelector``): every ``matchLabels``
entry and every ``matchExpressions`` requirement must hold, an empty selector selects every pod
of the policy's namespace, a null (absent) one none, and ``null`` fields count as absent.
tests/integration/test_finops_selection.py holds the two to the same answers on the same pods.

What Prometheus cannot tell apart: kube-state-metrics writes label ``app.kubernetes.io/name``
as ``label_app_kubernetes_io_name`` (every character outside ``[a-zA-Z0-9_]`` becomes ``_``),
so two keys that differ only there are one series label; and a label with an empty value is
indistinguishable from an absent one (``Exists`` needs a non-empty value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from edgepolicy.errors import InputError

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def pod_label_name(key: str) -> str:
    """The ``kube_pod_labels`` series label holding pod label ``key``."""
    return "label_" + _INVALID_LABEL_CHARS.sub("_", key)


def quote(value: str) -> str:
    """``value`` as a PromQL double-quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _alternatives(values: Sequence[str]) -> str:
    """An RE2 expression matching exactly ``values`` (PromQL anchors it)."""
    return "|".join(re.escape(v) for v in values)


def _present(obj: Mapping[str, Any], field: str, fallback: Any) -> Any:
    value = obj.get(field)
    return fallback if value is None else value


def selector_matchers(selector: Any, namespace: str, where: str) -> list[str] | None:
    """The PromQL matchers (``namespace`` included) selecting, in ``kube_pod_labels``, the pods
    of ``namespace`` that ``selector`` selects; None when it can select none (a null selector,
    ``In`` without values). ``where`` names the policy in errors.

    Raises:
        InputError: a requirement is malformed (the validator refuses those policies earlier).
    """
    if not isinstance(selector, Mapping):
        return None
    matchers = [f"namespace={quote(namespace)}"]
    match_labels = _present(selector, "matchLabels", {})
    if not isinstance(match_labels, Mapping):
        raise InputError(f"{where}: spec.targetWorkloadSelector.matchLabels is not a map")
    for key, value in match_labels.items():
        matchers.append(f"{pod_label_name(str(key))}={quote(str(value))}")
    expressions = _present(selector, "matchExpressions", [])
    if not isinstance(expressions, list):
        raise InputError(f"{where}: spec.targetWorkloadSelector.matchExpressions is not a list")
    for index, requirement in enumerate(expressions):
        field = f"spec.targetWorkloadSelector.matchExpressions[{index}]"
        if not isinstance(requirement, Mapping) or not isinstance(requirement.get("key"), str):
            raise InputError(f"{where}: {field}: expected a requirement with a key")
        name = pod_label_name(requirement["key"])
        values = [str(v) for v in _present(requirement, "values", [])]
        operator = requirement.get("operator")
        if operator == "In":
            if not values:
                return None
            matchers.append(f"{name}=~{quote(_alternatives(values))}")
        elif operator == "NotIn":
            if values:
                matchers.append(f"{name}!~{quote(_alternatives(values))}")
        elif operator == "Exists":
            matchers.append(f'{name}!=""')
        elif operator == "DoesNotExist":
            matchers.append(f'{name}=""')
        else:  # as the Rego library: an unknown operator matches nothing
            return None
    return matchers
