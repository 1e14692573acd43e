"""Find the FinOpsPolicy documents of a YAML file and change their numbers in place.

The file is composed (not loaded) with PyYAML, whose nodes carry their start and end positions
in the text; a number is changed by replacing exactly its characters, so comments, key order,
quoting and indentation stay as they were and a diff shows only the changed numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import yaml

from edgepolicy.errors import InputError

POLICY_API_GROUP = "policy.apexlogic.com/"


@dataclass(frozen=True)
class NumberField:
    """A plain number in the text: its value and its characters' span ``[start, end)``."""

    value: Decimal
    start: int
    end: int


@dataclass(frozen=True)
class PolicyDocument:
    """A FinOpsPolicy in a file: its position among the file's documents, namespace and name
    (``default`` when it names none), targetWorkloadSelector, and the plain numbers under its
    ``spec`` by path (``("costLimits", "maxCPUCores")``)."""

    index: int
    namespace: str
    name: str
    selector: Mapping[str, object]
    numbers: Mapping[tuple[str, ...], NumberField]


def finops_policies(text: str, path: str) -> list[PolicyDocument]:
    """Return the FinOpsPolicy documents of ``text`` (the file ``path``).

    Raises:
        InputError: the text is not YAML (naming ``path`` and the line).
    """
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(
            f"not YAML: {getattr(error, 'problem', error)}", path=path, line=line
        ) from error
    found = []
    for index, node in enumerate(nodes):
        if not isinstance(node, yaml.MappingNode):
            continue
        top = _children(node)
        kind, api = _text(top.get("kind")), _text(top.get("apiVersion"))
        if kind != "FinOpsPolicy" or not api.startswith(POLICY_API_GROUP):
            continue
        metadata = _children(top.get("metadata"))
        name = _text(metadata.get("name"))
        if not name:
            raise InputError(
                f"FinOpsPolicy document {index + 1} has no metadata.name",
                path=path,
                line=node.start_mark.line + 1,
            )
        spec = top.get("spec")
        selector_node = _children(spec).get("targetWorkloadSelector")
        selector = yaml.SafeLoader(text).construct_document(selector_node) if selector_node else {}
        found.append(
            PolicyDocument(
                index=index,
                namespace=_text(metadata.get("namespace")) or "default",
                name=name,
                selector=selector if isinstance(selector, Mapping) else {},
                numbers=dict(_numbers(spec, ())),
            )
        )
    return found


def replace_numbers(text: str, changes: Sequence[tuple[NumberField, Decimal]]) -> str:
    """Return ``text`` with each number field replaced by its new value, written as a plain
    decimal (``5``, ``3.5``: never an exponent)."""
    for field, value in sorted(changes, key=lambda change: change[0].start, reverse=True):
        text = text[: field.start] + decimal_text(value) + text[field.end :]
    return text


def decimal_text(value: Decimal) -> str:
    """``value`` as a YAML number: plain decimal notation without trailing zeros."""
    text = format(value.normalize(), "f")
    return text


def _children(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: value for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def _text(node: yaml.Node | None) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def _numbers(
    node: yaml.Node | None, prefix: tuple[str, ...]
) -> list[tuple[tuple[str, ...], NumberField]]:
    """The plain (unquoted) int and float scalars under ``node``, by their key path."""
    found = []
    for key, child in _children(node).items():
        path = (*prefix, key)
        if isinstance(child, yaml.MappingNode):
            found.extend(_numbers(child, path))
        elif (
            isinstance(child, yaml.ScalarNode)
            and child.style is None
            and child.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        ):
            try:
                value = Decimal(child.value.replace("_", ""))
            except ArithmeticError:
                continue  # .inf, .nan, 0x10: not a limit a suggestion rewrites
            if value.is_finite():
                found.append(
                    (path, NumberField(value, child.start_mark.index, child.end_mark.index))
                )
    return found
