"""Evaluate a CRD's CEL rules (``x-kubernetes-validations``) as the API server does, for
:mod:`edgepolicy.validated_policies`: ``self`` is the value the rule is attached to.

cel-python interprets CEL; Kubernetes' string ``format`` extension, which the CRDs use in
``messageExpression`` (the API server's cost estimator refuses ``string(int)`` concatenation
there), is added for the verbs ``%d``, ``%s`` and ``%%``. Rules are compiled once each.
"""

from __future__ import annotations

import re
from typing import Any

import celpy
from celpy.adapter import json_to_cel

_ENVIRONMENT = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}
_VERB = re.compile(r"%([%ds])")


def _format(template: Any, args: Any) -> celpy.celtypes.StringType:
    """The ``format`` of Kubernetes' CEL string library for the verbs ``%s``, ``%d`` and
    ``%%`` (``'(%d > %d)'.format([a, b])``), which cel-python lacks.

    Raises:
        ValueError: another verb, or too few arguments.
    """
    values = iter(list(args))

    def verb(match: re.Match[str]) -> str:
        if match.group(1) == "%":
            return "%"
        value = next(values, None)
        if value is None:
            raise ValueError(f"too few arguments for {template!r}")
        return str(int(value)) if match.group(1) == "d" else str(value)

    if re.search(r"%[^%ds]", str(template)):
        raise ValueError(f"unsupported format verb in {template!r}")
    return celpy.celtypes.StringType(_VERB.sub(verb, str(template)))


def _program(expression: str) -> Any:
    program = _PROGRAMS.get(expression)
    if program is None:
        ast = _ENVIRONMENT.compile(expression)
        program = _ENVIRONMENT.program(ast, functions={"format": _format})
        _PROGRAMS[expression] = program
    return program


def rule_holds(rule: str, value: Any) -> bool:
    """Evaluate the CEL ``rule`` with ``self`` bound to ``value``; an evaluation error (a
    wrongly typed value) counts as failing."""
    try:
        result = _program(rule).evaluate({"self": json_to_cel(value)})
    except Exception:  # noqa: BLE001 - any CEL failure means the rule does not hold
        return False
    return result is True or (isinstance(result, celpy.celtypes.BoolType) and bool(result))


def rule_message(expression: str, value: Any) -> str:
    """Evaluate the CEL ``messageExpression`` with ``self`` bound to ``value``; when it cannot
    be evaluated, say which expression failed."""
    try:
        return str(_program(expression).evaluate({"self": json_to_cel(value)}))
    except Exception:  # noqa: BLE001 - the message is best effort, the rule already failed
        return f"must satisfy {expression}"
