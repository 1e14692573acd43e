# METADATA
# title: Policy rules
# description: |
#   `policy.invalid`: a malformed FinOpsPolicy is reported when it is admitted itself, and on every
#   workload it applies to. A policy whose selector is unusable is reported on every workload of
#   its namespace (nobody can tell what it targets: fail closed) and enforces nothing else; a
#   malformed policy with a usable selector keeps enforcing its valid fields.
package edgepolicy.rules.policy

import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.selector

# METADATA
# title: policy.invalid (admitted FinOpsPolicy)
# description: The admitted FinOpsPolicy is malformed.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#policy.invalid
#     description: policy.invalid in docs/policies.md
# custom:
#   rule: policy.invalid
#   description: "A FinOpsPolicy is malformed (wrong types, zero or negative limits, minReplicas above maxReplicas, a bad or missing selector, unknown or mis-indented fields). Reported on the policy itself, one finding per field, and on every workload it may apply to."
#   summary: "Malformed FinOpsPolicy"
#   fix: "Fix the field the message names (type, range, selector, unknown or mis-indented field) so the policy matches the FinOpsPolicy schema; until then the policy enforces nothing else and, with an unusable selector, denies every workload of its namespace."
findings contains finding if {
	request.kind == "FinOpsPolicy"
	some error in policy.errors(request.object)
	finding := {
		"rule": "policy.invalid",
		"policy": concat("/", [request.namespace, request.name]),
		"message": sprintf("policy.invalid: %s: %s; fix the policy", [request.description, _describe(error)]),
	}
}

# METADATA
# title: policy.invalid (policy applying to the admitted object)
# description: A FinOpsPolicy in data or context that applies to the admitted object is malformed.
findings contains finding if {
	some id in (policy.matching | policy.unusable)
	some error in policy.errors(policy.candidates[id].object)
	finding := {
		"rule": "policy.invalid",
		"policy": id,
		"message": sprintf(
			"policy.invalid: FinOpsPolicy %s, which %s %s, is malformed: %s; fix the policy (until then %s)",
			[id, _relation(id), request.description, _describe(error), _meanwhile(id)],
		),
	}
}

# METADATA
# title: policy.invalid (ModelPolicy without a usable selector)
# description: |
#   A ModelPolicy of the admitted workload's namespace whose selector is missing or malformed:
#   nobody can tell which workloads must serve trusted models, so it is reported on every
#   workload of the namespace (fail closed). Its other fields are validated by its CRD schema.
findings contains finding if {
	some id in object.get(policy.unusable_by_kind, "ModelPolicy", set())
	some error in _selector_errors(policy.model_candidates[id].object)
	finding := {
		"rule": "policy.invalid",
		"policy": id,
		"message": sprintf(
			"policy.invalid: ModelPolicy %s, which may apply to %s, is malformed: %s; fix the policy (until then it enforces nothing else)",
			[id, request.description, _describe(error)],
		),
	}
}

# METADATA
# title: _selector_errors
# description: 'The errors of `obj`''s spec.targetWorkloadSelector (its absence included).'
_selector_errors(obj) := selector.errors(obj.spec.targetWorkloadSelector, "spec.targetWorkloadSelector") if {
	obj.spec.targetWorkloadSelector != null
} else := {{"field": "spec.targetWorkloadSelector", "message": "is required: a label selector with matchLabels and/or matchExpressions"}}

# METADATA
# title: _relation
# description: 'How policy `id` relates to the admitted object, for messages.'
_relation(id) := "applies to" if id in policy.matching

else := "may apply to"

# METADATA
# title: _meanwhile
# description: |
#   What malformed policy `id` enforces until it is fixed, for messages: a policy that matched
#   keeps its valid fields; one without a usable selector matches nothing, so it enforces nothing
#   beyond this finding.
_meanwhile(id) := "only its valid fields are enforced" if id in policy.matching

else := "it enforces nothing else"

# METADATA
# title: _describe
# description: '`error` as text: its field and message.'
_describe(error) := error.message if error.field == ""

else := sprintf("%s %s", [error.field, error.message])
