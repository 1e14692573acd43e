"""CEL rules of the CRDs, evaluated as the API server evaluates them."""

from __future__ import annotations

from edgepolicy.cel_rules import rule_holds, rule_message

ORDER = "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas"


def test_a_rule_holds_or_not_on_its_value() -> None:
    assert rule_holds(ORDER, {"minReplicas": 1, "maxReplicas": 3})
    assert rule_holds(ORDER, {"minReplicas": 3})
    assert not rule_holds(ORDER, {"minReplicas": 4, "maxReplicas": 3})


def test_a_rule_that_cannot_be_evaluated_fails() -> None:
    assert not rule_holds(ORDER, {"minReplicas": "4", "maxReplicas": 3})
    assert not rule_holds("self.(", {})


def test_messages_use_kubernetes_string_format() -> None:
    expression = "'(%d > %d) is %s, 100%%'.format([self.a, self.b, self.c])"
    assert rule_message(expression, {"a": 5, "b": 3, "c": "wrong"}) == "(5 > 3) is wrong, 100%"


def test_a_message_that_cannot_be_evaluated_names_its_expression() -> None:
    for expression in ("'%d %d'.format([self.a])", "'%x'.format([self.a])"):
        assert rule_message(expression, {"a": 1}) == f"must satisfy {expression}"
