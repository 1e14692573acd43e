"""Validate policy objects once, when they enter, against the schemas of the shipped CRDs.

Every way a policy reaches a decision passes through :func:`validate_policies`: the bundle build,
``serve --policies``, the webhook's cluster lookup and ``check``. The decision is handed only its
output (docs/decision-contract.md): the valid policies, and the invalid ones with their errors
and their *enforceable* part, so that the Rego never validates a policy itself.

A policy is checked as the API server checks a custom resource: ``null`` in a field that is not
``nullable`` counts as absent (the API server prunes it), then the CRD's ``openAPIV3Schema``
(converted by :mod:`edgepolicy.crd_schema`) and its ``x-kubernetes-validations`` (CEL rules,
evaluated on a part only when that part has no schema error). Each error names its field
(``spec.costLimits.maxCPUCores``) and says what is expected and what was given.

The enforceable part of an invalid policy is the policy without its invalid fields: a field with
an error is removed, with the whole of its outermost ``x-kubernetes-map-type: atomic`` ancestor
(so a selector with any error is removed, and the policy then selects nothing), and a failed
cross-field rule removes every field it names (``self.minReplicas``, ``self.maxReplicas``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from edgepolicy.cel_rules import rule_holds, rule_message
from edgepolicy.crd_schema import KindSchema, child_schema, kind_schemas
from edgepolicy.manifests import is_policy_object
from edgepolicy.models.trust_content import signature_problems

FieldPath = tuple[str | int, ...]
_SELF_FIELD = re.compile(r"\bself\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class FieldError:
    """One problem of a policy: the field (a dotted path, ``""`` for the whole object) and what
    is wrong with it."""

    field: str
    message: str

    def to_document(self) -> dict[str, str]:
        """Return ``{"field", "message"}`` as the decision reads it."""
        return {"field": self.field, "message": self.message}


@dataclass(frozen=True)
class InvalidPolicy:
    """A policy that failed validation: its errors and what of it is still enforced."""

    kind: str
    namespace: str
    name: str
    errors: tuple[FieldError, ...]
    enforceable: Mapping[str, Any]

    def to_document(self) -> dict[str, Any]:
        """Return the record the decision reads (docs/decision-contract.md)."""
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "errors": [error.to_document() for error in self.errors],
            "object": dict(self.enforceable),
        }


@dataclass(frozen=True)
class ValidatedPolicies:
    """The output of :func:`validate_policies`: the only thing the decision's policies come
    from. ``valid`` holds the policy objects (nulls pruned, namespace set) in input order."""

    valid: tuple[Mapping[str, Any], ...] = ()
    invalid: tuple[InvalidPolicy, ...] = ()

    def context(self) -> dict[str, Any]:
        """Return the ``context`` entries of the decision input for these policies."""
        return {
            "policies": [dict(obj) for obj in self.valid],
            "invalidPolicies": [policy.to_document() for policy in self.invalid],
            "policiesValidated": True,
        }

    @classmethod
    def joined(cls, parts: Iterable[ValidatedPolicies]) -> ValidatedPolicies:
        """Return the policies of all ``parts``, in order."""
        valid: list[Mapping[str, Any]] = []
        invalid: list[InvalidPolicy] = []
        for part in parts:
            valid.extend(part.valid)
            invalid.extend(part.invalid)
        return cls(tuple(valid), tuple(invalid))

    def replaced_by(self, other: ValidatedPolicies) -> ValidatedPolicies:
        """Return these policies with ``other``'s added, each replacing any of the same kind,
        namespace and name here (the admitted version of a stored policy)."""
        keys = {_identity(obj) for obj in other.valid} | {
            (policy.kind, policy.namespace, policy.name) for policy in other.invalid
        }
        return ValidatedPolicies(
            tuple(obj for obj in self.valid if _identity(obj) not in keys) + other.valid,
            tuple(p for p in self.invalid if (p.kind, p.namespace, p.name) not in keys)
            + other.invalid,
        )


def _identity(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    namespace, name = _key(obj)
    return str(obj.get("kind", "")), namespace, name


NO_POLICIES = ValidatedPolicies()


def validate_policies(
    objs: Iterable[Mapping[str, Any]], *, namespace_default: str = "default"
) -> ValidatedPolicies:
    """Validate every policy object of ``objs`` (other objects are skipped).

    A policy without ``metadata.namespace`` is placed in ``namespace_default``. A policy of a
    kind without a shipped CRD is invalid (nothing could validate it).

    Raises:
        InputError: a shipped CRD cannot be read.
    """
    valid: list[Mapping[str, Any]] = []
    invalid: list[InvalidPolicy] = []
    for obj in objs:
        if not is_policy_object(obj):
            continue
        normalized, errors, enforceable = check_policy(obj, namespace_default=namespace_default)
        if errors:
            namespace, name = _key(normalized)
            invalid.append(
                InvalidPolicy(str(obj.get("kind")), namespace, name, tuple(errors), enforceable)
            )
        else:
            valid.append(normalized)
    return ValidatedPolicies(tuple(valid), tuple(invalid))


def check_policy(
    obj: Mapping[str, Any], *, namespace_default: str = "default"
) -> tuple[dict[str, Any], list[FieldError], dict[str, Any]]:
    """Return ``obj`` normalized (nulls pruned, namespace set), its errors, and its enforceable
    part (the normalized object when it has no error).

    Raises:
        InputError: a shipped CRD cannot be read.
    """
    kind = str(obj.get("kind", ""))
    schema = kind_schemas().get(kind)
    normalized = _prune_nulls(copy.deepcopy(dict(obj)), schema.structural if schema else {})
    metadata = normalized.get("metadata")
    if isinstance(metadata, dict) and not metadata.get("namespace"):
        metadata["namespace"] = namespace_default
    if schema is None:
        unknown = f"edgepolicy ships no CRD for the kind {kind}, so it cannot be validated"
        return normalized, [FieldError("", unknown)], {}
    errors = _checker(schema).check(normalized)
    errors += _content_errors(kind, normalized, {error.field for _, error in errors})
    if not errors:
        return normalized, [], normalized
    enforceable = copy.deepcopy(normalized)
    removed = {path for paths, _ in errors for path in paths}
    # Deepest first, and the later items of a list before the earlier ones.
    for path in sorted(removed, key=lambda path: (len(path), _ordered(path)), reverse=True):
        enforceable = _remove(enforceable, path)
    return normalized, [error for _, error in errors], enforceable


# What a kind's schema cannot check (the content of a field), by kind.
_CONTENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], list[tuple[FieldPath, str]]]] = {
    "ModelPolicy": signature_problems,
}


def _content_errors(
    kind: str, obj: Mapping[str, Any], reported: set[str]
) -> list[tuple[list[FieldPath], FieldError]]:
    """The errors of ``kind``'s content check on the fields the schema found no error in."""
    check = _CONTENT_CHECKS.get(kind)
    spec = obj.get("spec")
    if check is None or not isinstance(spec, Mapping):
        return []
    found = []
    for path, message in check(spec):
        name = field_name(path)
        if not any(name == field or name.startswith(f"{field}.") for field in reported):
            found.append(([path], FieldError(name, message)))
    return found


def _ordered(path: FieldPath) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, step, "") if isinstance(step, int) else (1, 0, step) for step in path)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    return (
        namespace if isinstance(namespace, str) else "default",
        name if isinstance(name, str) else "",
    )


def _prune_nulls(value: Any, structural: Mapping[str, Any]) -> Any:
    """Read ``value`` as the API server does: drop every property set to null that the schema
    does not mark ``nullable`` (map values and list items are kept: null there is an error),
    and read a whole float where the schema wants an integer (``2.0``) as that integer."""
    if structural.get("type") == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        properties = structural.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        for key in list(value):
            sub = child_schema(structural, key) or {}
            if value[key] is None and key in properties and not sub.get("nullable"):
                del value[key]
            else:
                value[key] = _prune_nulls(value[key], sub)
    elif isinstance(value, list):
        sub = child_schema(structural, 0) or {}
        return [_prune_nulls(item, sub) for item in value]
    return value


def _remove(obj: dict[str, Any], path: FieldPath) -> dict[str, Any]:
    """Return ``obj`` without the value at ``path`` (everything when ``path`` is empty)."""
    if not path:
        return {}
    parent: Any = obj
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return obj
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
    elif isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
        del parent[path[-1]]
    return obj


def field_name(path: Sequence[str | int]) -> str:
    """Return ``path`` as a field name: ``spec.targetWorkloadSelector.matchExpressions[0].key``."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else str(step)
    return text


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _phrase(description: Any) -> str | None:
    """The first sentence of a schema ``description``, as a phrase to follow "must be" or
    "is required:"; None without a description."""
    if not isinstance(description, str) or not description.strip():
        return None
    sentence = description.strip().split(". ")[0].rstrip(".")
    return sentence[:1].lower() + sentence[1:]


def expectation(schema: Mapping[str, Any]) -> str:
    """What a value of the JSON Schema ``schema`` must be, for messages."""
    types = schema.get("type")
    kind = next((t for t in types if t != "null"), None) if isinstance(types, list) else types
    if "enum" in schema:
        return "one of " + ", ".join(sorted(str(v) for v in schema["enum"]))
    if kind == "string" and "pattern" in schema:
        return _phrase(schema.get("description")) or f"a string matching {schema['pattern']}"
    if kind in ("number", "integer"):
        noun = "a whole number" if kind == "integer" else "a number"
        low, high = schema.get("minimum"), schema.get("maximum")
        if "exclusiveMinimum" in schema:
            return f"{noun} greater than {schema['exclusiveMinimum']}"
        if low is not None and high is not None:
            return f"{noun} from {low} to {high}"
        if low is not None:
            return f"{noun} of at least {low}"
        if high is not None:
            return f"{noun} of at most {high}"
        return noun
    if kind == "boolean":
        return "true or false"
    if kind == "object":
        properties = schema.get("properties")
        if (
            isinstance(properties, Mapping)
            and properties
            and all(
                isinstance(p, Mapping) and p.get("type") == "string" for p in properties.values()
            )
        ):
            return f"an object with {' and '.join(properties)} strings"
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and extra.get("type") == "string":
            return "a map of strings"
        return "an object"
    if kind == "array":
        return "a list"
    if kind == "string":
        return "a string"
    return "valid"


_SIZE_BOUNDS = {
    "minProperties": ("have at least", "field"),
    "maxProperties": ("have at most", "field"),
    "minItems": ("have at least", "item"),
    "maxItems": ("have at most", "item"),
    "minLength": ("be at least", "character"),
    "maxLength": ("be at most", "character"),
}


def _size_bound(keyword: str, schema: Mapping[str, Any]) -> str | None:
    """What a size keyword (``minProperties``, ``minLength``, ...) requires, for messages; None
    for other keywords, and for a string with a ``pattern``, whose description says more."""
    if keyword not in _SIZE_BOUNDS or (keyword.endswith("Length") and "pattern" in schema):
        return None
    verb, noun = _SIZE_BOUNDS[keyword]
    count = schema.get(keyword)
    nouns = noun if count == 1 else f"{noun}s"
    return f"{verb} {count} {nouns}" + (" long" if keyword.endswith("Length") else "")


_CHECKERS: dict[str, _Checker] = {}


def _checker(schema: KindSchema) -> _Checker:
    """The checker of ``schema``'s kind, built once (building the JSON Schema validator costs
    more than using it)."""
    checker = _CHECKERS.get(schema.kind)
    if checker is None or checker.schema is not schema:
        checker = _CHECKERS[schema.kind] = _Checker(schema)
    return checker


class _Checker:
    """Checks one object against one kind's schema."""

    def __init__(self, schema: KindSchema) -> None:
        self.schema = schema
        self._schema = schema
        self._validator = Draft202012Validator(dict(schema.json_schema))

    def check(self, obj: Any) -> list[tuple[list[FieldPath], FieldError]]:
        """Return the errors of ``obj``, one per field, each with the paths to remove from the
        enforceable part."""
        found: dict[str, tuple[list[FieldPath], FieldError]] = {}
        schema_paths: list[FieldPath] = []
        for error in sorted(self._validator.iter_errors(obj), key=_error_order):
            for path, message in self._describe(error):
                schema_paths.append(path)
                name = field_name(path)
                found.setdefault(name, ([self._widen(path)], FieldError(name, message)))
        for path, message, remove in self._rules(obj, (), self._schema.structural, schema_paths):
            name = field_name(path)
            found.setdefault(name, ([self._widen(r) for r in remove], FieldError(name, message)))
        return list(found.values())

    def _describe(self, error: ValidationError) -> list[tuple[FieldPath, str]]:
        path: FieldPath = tuple(error.absolute_path)
        instance = error.instance
        keyword = error.validator
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        if keyword == "required" and isinstance(instance, Mapping):
            missing = [name for name in schema.get("required", []) if name not in instance]
            result = []
            for name in missing:
                sub = child_schema(self._structural_at(path), name) or {}
                phrase = _phrase(sub.get("description"))
                message = f"is required: {phrase}" if phrase else "is required"
                result.append(((*path, name), message))
            return result
        if keyword == "additionalProperties" and isinstance(instance, Mapping):
            known = list((schema.get("properties") or {}).keys())
            listed = ", ".join(sorted(known))
            result = []
            for name in instance:
                if name in known:
                    continue
                hint = self._hint(schema, str(name))
                result.append(((*path, name), f"unknown field (known: {listed}){hint}"))
            return result
        if keyword == "uniqueItems":
            return [(path, f"must not repeat an item (a set), got {_shown(instance)}")]
        bound = _size_bound(str(keyword), schema)
        if bound is not None:
            return [(path, f"must {bound}, got {_shown(instance)}")]
        return [(path, f"must be {expectation(schema)}, got {_shown(instance)}")]

    @staticmethod
    def _hint(schema: Mapping[str, Any], name: str) -> str:
        """Say where an unknown field ``name`` belongs when a sibling object defines it."""
        for sibling, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, Mapping) and name in (sub.get("properties") or {}):
                return f"; it belongs under {sibling}"
        return ""

    def _structural_at(self, path: FieldPath) -> Mapping[str, Any]:
        structural: Mapping[str, Any] = self._schema.structural
        for step in path:
            structural = child_schema(structural, step) or {}
        return structural

    def _widen(self, path: FieldPath) -> FieldPath:
        """Return the outermost atomic (``x-kubernetes-map-type: atomic``) ancestor of ``path``,
        or ``path``."""
        structural: Mapping[str, Any] = self._schema.structural
        for depth, step in enumerate(path):
            structural = child_schema(structural, step) or {}
            if structural.get("x-kubernetes-map-type") == "atomic":
                return path[: depth + 1]
        return path

    def _rules(
        self,
        value: Any,
        path: FieldPath,
        structural: Mapping[str, Any],
        schema_paths: list[FieldPath],
    ) -> list[tuple[FieldPath, str, list[FieldPath]]]:
        """Evaluate the ``x-kubernetes-validations`` of ``value`` and of its parts. A part with a
        schema error at or above it is skipped, and so is a rule on a field it names
        (``self.minReplicas``) that has a schema error: CEL would only fail on its type."""
        if any(path[: len(bad)] == bad for bad in schema_paths):
            return []
        found = []
        for rule in structural.get("x-kubernetes-validations") or []:
            named = [(*path, name) for name in _SELF_FIELD.findall(rule["rule"])]
            if any(field[: len(bad)] == bad for field in named for bad in schema_paths):
                continue
            if rule_holds(rule["rule"], value):
                continue
            target = (*path, *_field_path(rule.get("fieldPath")))
            expression = rule.get("messageExpression")
            message = (
                rule_message(expression, value)
                if expression
                else str(rule.get("message") or f"must satisfy {rule['rule']}")
            )
            found.append((target, message, [target, *named]))
        return found + self._rules_below(value, path, structural, schema_paths)

    def _rules_below(
        self,
        value: Any,
        path: FieldPath,
        structural: Mapping[str, Any],
        schema_paths: list[FieldPath],
    ) -> list[tuple[FieldPath, str, list[FieldPath]]]:
        found = []
        steps: Iterable[str | int] = (
            value.keys()
            if isinstance(value, dict)
            else range(len(value))
            if isinstance(value, list)
            else ()
        )
        for step in steps:
            sub = child_schema(structural, step)
            if sub is not None:
                found += self._rules(value[step], (*path, step), sub, schema_paths)
        return found


def _error_order(error: ValidationError) -> tuple[int, str]:
    # Type errors first, so a field's message says what it must be rather than a bound.
    return (0 if error.validator == "type" else 1, str(error.validator))


def _field_path(field_path: Any) -> FieldPath:
    """``.minReplicas`` or ``.values`` (a CEL rule's ``fieldPath``) as path steps."""
    if not isinstance(field_path, str):
        return ()
    return tuple(step for step in field_path.split(".") if step)
