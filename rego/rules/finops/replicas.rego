# finops.replicas: spec.replicas, when set, within the policy's [minReplicas, maxReplicas]
# (part of package edgepolicy.rules.finops, annotated in finops.rego). Objects owned by a
# controller (a Deployment's ReplicaSets) are left to their owner, which is checked itself: the
# controller scales them to 0 during rollouts.
package edgepolicy.rules.finops

import data.edgepolicy.lib.request

# METADATA
# title: finops.replicas
# description: '`spec.replicas`, when set, is outside [`autoScale.minReplicas`, `autoScale.maxReplicas`].'
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#finops.replicas
#     description: finops.replicas in docs/policies.md
# custom:
#   rule: finops.replicas
#   summary: "spec.replicas outside the FinOpsPolicy's autoScale bounds"
#   fix: "Set `spec.replicas` within [`autoScale.minReplicas`, `autoScale.maxReplicas`] of the policy."
findings contains finding if {
	some record in _workload_policies
	request.kind in {"Deployment", "StatefulSet", "ReplicaSet"}
	not request.is_controlled
	replicas := request.object.spec.replicas
	is_number(replicas)
	some bound in _replica_bounds(record.settings, replicas)
	finding := {
		"rule": "finops.replicas",
		"policy": record.id,
		"message": sprintf(
			"finops.replicas: %s: spec.replicas %v is %s autoScale.%s %v of FinOpsPolicy %s; set spec.replicas to %s %v",
			[request.description, replicas, bound.relation, bound.field, bound.limit, record.id, bound.fix, bound.limit],
		),
	}
}

# METADATA
# title: _replica_bounds
# description: 'The autoScale bounds of `policy_settings` that `replicas` breaks.'
_replica_bounds(policy_settings, replicas) := [bound |
	some field, relation in {"minReplicas": "below", "maxReplicas": "above"}
	limit := policy_settings[field]
	_is_out_of_bound(relation, replicas, limit)
	bound := {"field": field, "relation": relation, "limit": limit, "fix": _fixes[relation]}
]

# METADATA
# title: _fixes
# description: 'What to set replicas to, per broken bound.'
_fixes := {"below": "at least", "above": "at most"}

# METADATA
# title: _is_out_of_bound
# description: 'True when `replicas` is on the wrong side of `limit`.'
_is_out_of_bound("below", replicas, limit) if replicas < limit

_is_out_of_bound("above", replicas, limit) if replicas > limit
