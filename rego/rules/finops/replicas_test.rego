# METADATA
# title: Tests of finops.replicas
package edgepolicy.rules.finops.replicas_test

import data.edgepolicy.rules.finops
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _found
# description: 'The finops.replicas findings for `obj` under the seed policy.'
_found(obj) := {f | some f in finops.findings with input as fx.seeded(obj); f.rule == "finops.replicas"}

# METADATA
# title: _small
# description: 'Containers small enough for every cost rule.'
_small := [fx.container("a", "100m", "128Mi")]

# METADATA
# title: replicas at the bounds are allowed
test_bounds_allowed if {
	count(_found(fx.deployment(1, _small))) == 0
	count(_found(fx.deployment(3, _small))) == 0
	count(_found(fx.workload("Deployment", fx.pod_spec(_small)))) == 0
}

# METADATA
# title: one above maxReplicas is denied
test_above_denied if {
	[f] := [f | some f in _found(fx.deployment(4, _small))]
	f.message == "finops.replicas: Deployment ai-workloads/inference: spec.replicas 4 is above autoScale.maxReplicas 3 of FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy; set spec.replicas to at most 3"
}

# METADATA
# title: one below minReplicas is denied
test_below_denied if {
	policy := fx.policy("p", fx.selector_spec({"autoScale": {"minReplicas": 2, "maxReplicas": 4}}))
	statefulset := object.union(fx.workload("StatefulSet", fx.pod_spec(_small)), {"spec": {"replicas": 1}})
	[f] := [f | some f in finops.findings with input as fx.review_with(statefulset, {"policies": [policy]}); f.rule == "finops.replicas"]
	contains(f.message, "spec.replicas 1 is below autoScale.minReplicas 2")
	contains(f.message, "set spec.replicas to at least 2")
}

# METADATA
# title: ReplicaSets owned by a controller are left to their owner
test_controlled_skipped if {
	owned := object.union(fx.workload("ReplicaSet", fx.pod_spec(_small)), {
		"spec": {"replicas": 0},
		"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference", "controller": true}]},
	})
	count(_found(owned)) == 0
	count(_found(json.remove(owned, ["metadata/ownerReferences"]))) == 1
}

# METADATA
# title: kinds without spec.replicas are not judged
test_other_kinds if {
	count(_found(object.union(fx.workload("Job", fx.pod_spec(_small)), {"spec": {"replicas": 9}}))) == 0
}

# METADATA
# title: inverted bounds (minReplicas above maxReplicas) are not enforced; policy.invalid reports them
test_inverted_bounds_not_enforced if {
	inverted := fx.policy("p", fx.selector_spec({"autoScale": {"minReplicas": 5, "maxReplicas": 3}}))
	error := {"field": "spec.autoScale.minReplicas", "message": "must not exceed spec.autoScale.maxReplicas (5 > 3), so neither bound is enforced"}
	record := fx.invalid_record(inverted, [error], fx.selector_spec({"autoScale": {}}))
	findings := finops.findings with input as fx.review_with(fx.deployment(4, _small), {"invalidPolicies": [record]})
	count({f | some f in findings; f.rule == "finops.replicas"}) == 0
}
