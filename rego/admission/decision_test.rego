# METADATA
# title: Tests of the admission decision document
package edgepolicy.admission_test

import data.edgepolicy.admission
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _over_budget
# description: 'A Deployment above the seed''s cpu and memory limits, with a container lacking limits.'
_over_budget := fx.deployment(1, [fx.container("server", "4", "12Gi"), {"name": "sidecar"}])

# METADATA
# title: _quantized
# description: 'A context with the seed policy and verified quantized facts for container `server`.'
_quantized := {"policies": [fx.seed_policy], "models": fx.quantized("server")}

# METADATA
# title: a compliant workload with verified facts is allowed and mutated
test_compliant_allowed if {
	decision := admission.decision with input as fx.review_with(fx.compliant, _quantized)
	decision.allowed
	decision.violations == []
	decision.warnings == []
	decision.dryrun == []
	decision.policies == [fx.policy_id]
	count(decision.patches) == 2
}

# METADATA
# title: an over-budget workload is denied with sorted findings carrying their action
test_denied_sorted if {
	decision := admission.decision with input as fx.review_with(_over_budget, _quantized)
	not decision.allowed
	[[f.rule, object.get(f, "container", ""), f.action] | some f in decision.violations] == [
		["finops.cpu", "", "deny"],
		["finops.limits-missing", "sidecar", "deny"],
		["finops.memory", "", "deny"],
	]
}

# METADATA
# title: warn and dryrun rules never block
test_enforcement_actions if {
	decision := admission.decision with input as fx.review_with(_over_budget, _quantized)
		with data.edgepolicy.settings.enforcementActions as {"finops.cpu": "warn", "finops.memory": "dryrun", "finops.limits-missing": "warn"}
	decision.allowed
	decision.violations == []
	[[f.rule, f.action] | some f in decision.warnings] == [["finops.cpu", "warn"], ["finops.limits-missing", "warn"]]
	[[f.rule, f.action] | some f in decision.dryrun] == [["finops.memory", "dryrun"]]
}

# METADATA
# title: one deny among warnings still blocks
test_mixed_actions if {
	decision := admission.decision with input as fx.review_with(_over_budget, _quantized)
		with data.edgepolicy.settings.enforcementActions as {"finops.cpu": "warn"}
	not decision.allowed
	count(decision.warnings) == 1
}

# METADATA
# title: DELETE and CONNECT are allowed untouched
test_delete_and_connect if {
	every operation in ["DELETE", "CONNECT"] {
		decision := admission.decision with input as fx.review_op(_over_budget, operation)
			with data.edgepolicy.policies.finops as {fx.namespace: {"edge-ai-inference-cost-policy": fx.seed_policy}}
		decision == {"allowed": true, "violations": [], "warnings": [], "dryrun": [], "patches": [], "policies": []}
	}
}

# METADATA
# title: UPDATE is judged like CREATE
test_update if {
	decision := admission.decision with input as object.union(fx.review_op(_over_budget, "UPDATE"), {"context": _quantized})
	not decision.allowed
}

# METADATA
# title: an UPDATE of an object already being deleted is allowed (finalizers can be removed)
test_update_while_terminating if {
	terminating := object.union(_over_budget, {"metadata": {"deletionTimestamp": "2026-11-27T06:00:00Z", "finalizers": []}})
	review := object.union(fx.review_op(terminating, "UPDATE"), {"context": _quantized})
	finalizing := object.union(review, {"request": {"oldObject": object.union(terminating, {"metadata": {"finalizers": ["example.com/cleanup"]}})}})
	decision := admission.decision with input as finalizing
	decision.allowed
	decision.patches == []

	# a deletionTimestamp in the new object alone (not in the stored one) exempts nothing
	not admission.decision.allowed with input as object.union(review, {"request": {"oldObject": _over_budget}})
}

# METADATA
# title: an empty or foreign input is allowed with empty lists, never an error
test_empty_input if {
	admission.decision.allowed with input as {}
	admission.decision.violations == [] with input as {"request": "nonsense"}
	admission.decision.allowed with input as fx.seeded({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
}

# METADATA
# title: every workload kind is decided
test_every_kind if {
	every kind in {"Pod", "Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "CronJob"} {
		decision := admission.decision with input as fx.seeded(fx.workload(kind, fx.pod_spec([{"name": "bare"}])))
		not decision.allowed
		"finops.limits-missing" in {f.rule | some f in decision.violations}
	}
}

# METADATA
# title: a malformed policy admitted itself is denied by policy.invalid; one not validated too
test_malformed_policy if {
	bad := object.union(fx.seed_policy, {"spec": {"costLimits": {"maxCPUCores": 0}}})
	error := {"field": "spec.costLimits.maxCPUCores", "message": "must be a number greater than 0, got 0"}
	record := fx.invalid_record(bad, [error], fx.selector_spec({}))
	decision := admission.decision with input as fx.review_with(bad, {"invalidPolicies": [record]})
	[[f.rule, f.policy] | some f in decision.violations] == [["policy.invalid", fx.policy_id]]
	contains(decision.violations[0].message, "spec.costLimits.maxCPUCores must be a number greater than 0, got 0")
	unvalidated := admission.decision with input as fx.review(fx.seed_policy)
	[[f.rule, f.policy] | some f in unvalidated.violations] == [["policy.invalid", fx.policy_id]]
	contains(unvalidated.violations[0].message, "was not validated")
	count(admission.decision.violations) == 0 with input as fx.review_with(fx.seed_policy, {"policies": [fx.seed_policy]})
}

# METADATA
# title: rules added under data.edgepolicy.rules join the decision
test_extension_rules if {
	extra := {{"rule": "custom.rule", "policy": "ns/p", "message": "custom"}}
	decision := admission.decision with input as fx.review_with(fx.compliant, _quantized) with data.edgepolicy.rules.custom.findings as extra
	decision.violations == [{"rule": "custom.rule", "policy": "ns/p", "message": "custom", "action": "deny"}]
}
