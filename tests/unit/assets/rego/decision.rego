# METADATA
# title: Test fixture following docs/decision-contract.md
# description: >
#   Denies pods whose metadata.labels.deny is set, warns on labels.warn; counts the
#   policies and workloads of the context so tests can see what the caller sent.
package edgepolicy.admission

import rego.v1

_object := input.request.object

_policies := {sprintf("%s/%s", [p.metadata.namespace, p.metadata.name]) |
	some p in input.context.policies
} | {sprintf("%s/%s", [ns, name]) |
	some ns, by_name in data.edgepolicy.policies.finops
	some name, _ in by_name
}

_violations contains {
	"rule": "test.deny",
	"policy": "fixture/deny",
	"message": sprintf("%s %s is labelled deny=%s", [_object.kind, _object.metadata.name, _object.metadata.labels.deny]),
	"action": _deny_action,
} if _object.metadata.labels.deny

_violations contains {
	"rule": "test.warn",
	"policy": "fixture/warn",
	"message": sprintf("%s %s is labelled warn", [_object.kind, _object.metadata.name]),
	"action": "warn",
	"container": "main",
} if _object.metadata.labels.warn

default _deny_action := "deny"

_deny_action := data.edgepolicy.settings.enforcementActions["test.deny"]

_by_action(action) := [v | some v in _violations; v.action == action]

decision := {"allowed": true, "violations": [], "warnings": [], "dryrun": [], "patches": [], "policies": []} if {
	input.request.operation in {"DELETE", "CONNECT"}
} else := {
	"allowed": count(_by_action("deny")) == 0,
	"violations": _by_action("deny"),
	"warnings": _by_action("warn"),
	"dryrun": _by_action("dryrun"),
	"patches": [],
	"policies": sort(_policies),
	"workloads": count(object.get(input, ["context", "workloads"], [])),
}
