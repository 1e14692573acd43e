"""What each rule checks and how to fix it, read from the Rego ``# METADATA`` of the policy.

The single source is the rule's own annotation: the ``findings`` rule annotation that carries
``custom.rule`` describes that rule id, as in::

    # METADATA
    # title: finops.cpu
    # description: Pods x per-pod cpu limit exceeds `costLimits.maxCPUCores`.
    # related_resources:
    #   - ref: https://.../docs/policies.md#finops.cpu
    # custom:
    #   rule: finops.cpu
    #   summary: "Workload CPU limits above the FinOpsPolicy's maxCPUCores"
    #   fix: "Lower `resources.limits.cpu` or the number of pods ..."
    #   description: "..."   # optional, when the annotation's description is about one case

OPA reads the annotations (``opa inspect --annotations``), so a policy repository's own rules
(``package edgepolicy.rules.<team>``) describe themselves the same way. The one rule that is not
Rego's, ``edgepolicy verify``'s "a case is not as expected", is described here
(:data:`VERIFY_RULE`), in the same form.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepolicy.errors import OpaError

PROJECT_URI = "https://github.com/apexlogic/edgepolicy"
_INSPECT_TIMEOUT_SECONDS = 60.0
_STDERR_TAIL_CHARS = 2000


@dataclass(frozen=True)
class RuleInfo:
    """One rule id's description (``summary`` one line, ``description`` and ``fix`` prose that
    may hold Markdown code spans, ``help_uri`` its documentation)."""

    id: str
    summary: str = ""
    description: str = ""
    fix: str = ""
    help_uri: str | None = None

    @property
    def name(self) -> str:
        """The id in PascalCase (``finops.limits-missing`` is ``FinopsLimitsMissing``)."""
        return "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", self.id))


VERIFY_RULE = RuleInfo(
    id="edgepolicy.verify",
    summary="Policy test case object not given its expected verdict",
    description=(
        "An object of an `edgepolicy verify` case (`edgepolicy-test.yaml`) did not get the "
        "verdict the case expects: `allowed` or a rule id of `violations`, `warnings` or "
        "`dryrun` differs, the object is not listed under `expected`, or a listed object is "
        "not among the case's inputs."
    ),
    fix=(
        "If the policy is wrong, change it until the object gets the expected verdict; if the "
        "expectation is wrong, correct the object's entry under `expected` (every object of "
        "the inputs by `Kind/name`, with `allowed` and the rule ids it is found by). "
        "`edgepolicy verify` with the text report shows what differs and every finding."
    ),
    help_uri=f"{PROJECT_URI}/blob/main/docs/verify.md#edgepolicy.verify",
)


class RuleCatalogue:
    """Rule descriptions by id; an id without one gets a bare :class:`RuleInfo`."""

    def __init__(self, rules: Iterable[RuleInfo] = ()) -> None:
        """Index ``rules`` by id (the first description of an id wins)."""
        self._rules: dict[str, RuleInfo] = {}
        for rule in rules:
            self._rules.setdefault(rule.id, rule)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def ids(self) -> list[str]:
        """The described rule ids, sorted."""
        return sorted(self._rules)

    def get(self, rule_id: str) -> RuleInfo:
        """Return the description of ``rule_id`` (a bare one when the policy has none)."""
        return self._rules.get(rule_id) or RuleInfo(rule_id)

    @classmethod
    def from_inspection(cls, document: Mapping[str, Any]) -> RuleCatalogue:
        """Build the catalogue from ``opa inspect --annotations --format json`` output.

        Annotations without a string ``custom.rule`` are not rule descriptions and are ignored;
        a description field that is not a string is ignored too (display only).
        """
        rules: list[RuleInfo] = []
        for entry in document.get("annotations") or []:
            annotation = entry.get("annotations") if isinstance(entry, Mapping) else None
            if not isinstance(annotation, Mapping):
                continue
            custom = annotation.get("custom")
            if not isinstance(custom, Mapping) or not isinstance(custom.get("rule"), str):
                continue
            resources = annotation.get("related_resources") or []
            refs = [r.get("ref") for r in resources if isinstance(r, Mapping)]
            rules.append(
                RuleInfo(
                    id=custom["rule"],
                    summary=_text(custom.get("summary")),
                    description=_text(custom.get("description"))
                    or _text(annotation.get("description")),
                    fix=_text(custom.get("fix")),
                    help_uri=next((ref for ref in refs if isinstance(ref, str) and ref), None),
                )
            )
        return cls(rules)


def load_rule_catalogue(opa_binary: Path, policy_path: Path) -> RuleCatalogue:
    """Read the rule descriptions of the Rego directory or bundle at ``policy_path`` with
    ``opa inspect --annotations``.

    Raises:
        OpaError: OPA could not run, failed, or printed something that is not the inspection.
    """
    command = [str(opa_binary), "inspect", "--annotations", "--format", "json", str(policy_path)]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            timeout=_INSPECT_TIMEOUT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OpaError(f"opa inspect {policy_path}: {error}") from error
    if completed.returncode != 0:
        tail = completed.stderr.decode("utf-8", "replace")[-_STDERR_TAIL_CHARS:].strip()
        raise OpaError(f"opa inspect {policy_path} failed (exit {completed.returncode}): {tail}")
    try:
        document = json.loads(completed.stdout)
    except ValueError as error:
        raise OpaError(f"opa inspect {policy_path}: unreadable output: {error}") from error
    if not isinstance(document, Mapping):
        raise OpaError(f"opa inspect {policy_path}: expected a JSON object")
    return RuleCatalogue.from_inspection(document)


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""
