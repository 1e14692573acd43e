# METADATA
# title: Policy rules
# description: |
#   `policy.invalid`: a policy the validator found malformed (docs/decision-contract.md) is
#   reported when it is admitted itself, and on every workload it applies to. A policy whose
#   selector is unusable is reported on every workload of its namespace (nobody can tell what it
#   targets: fail closed) and enforces nothing else; a malformed policy with a usable selector
#   keeps enforcing its valid fields. A policy that was not validated is reported the same way.
package edgepolicy.rules.policy

import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request

# METADATA
# title: policy.invalid (admitted policy)
# description: The admitted policy (a FinOpsPolicy, ModelPolicy or any kind of the policy group) is malformed.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#policy.invalid
#     description: policy.invalid in docs/policies.md
# custom:
#   rule: policy.invalid
#   description: "A FinOpsPolicy is malformed (it fails its CRD's schema or CEL rules: wrong types, zero or negative limits, minReplicas above maxReplicas, a bad or missing selector, unknown or mis-indented fields; or it reached the decision without being validated). Reported on the policy itself, one finding per field, and on every workload it may apply to."
#   summary: "Malformed FinOpsPolicy"
#   fix: "Fix the field the message names (type, range, selector, unknown or mis-indented field) so the policy matches the FinOpsPolicy schema; until then the policy enforces nothing else and, with an unusable selector, denies every workload of its namespace."
findings contains finding if {
	startswith(object.get(request.object, "apiVersion", ""), "policy.apexlogic.com/")
	some error in policy.admitted_errors
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
	some error in policy.candidates[id].errors
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
