# METADATA
# title: Tests of policy merging and matching
package edgepolicy.lib.policy_test

import data.edgepolicy.lib.policy
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _other
# description: 'A second valid policy selecting the fixture labels.'
_other := fx.policy("other", fx.selector_spec({"costLimits": {"maxCPUCores": 4}}))

# METADATA
# title: data and context policies of the request namespace merge by id, the context copy wins
test_merge if {
	newer := object.union(fx.seed_policy, {"spec": {"costLimits": {"maxCPUCores": 2}}})
	in_data := {"validated": true, "finops": {
		fx.namespace: {"edge-ai-inference-cost-policy": fx.seed_policy, "other": _other},
		"elsewhere": {"remote": _other},
	}}
	merged := policy.candidates with data.edgepolicy.policies as in_data
		with input as fx.review_with(fx.compliant, {"policies": [newer, {"kind": "Service"}]})
	object.keys(merged) == {fx.policy_id, "ai-workloads/other"}
	merged[fx.policy_id].object.spec.costLimits.maxCPUCores == 2
	merged[fx.policy_id].name == "edge-ai-inference-cost-policy"
	merged["ai-workloads/other"] == {"id": "ai-workloads/other", "namespace": fx.namespace, "name": "other", "object": _other, "errors": []}
}

# METADATA
# title: among duplicates in the context the last wins; a policy without namespace is in default
test_context_duplicates if {
	first := fx.policy("dup", fx.selector_spec({"costLimits": {"maxCPUCores": 1}}))
	last := fx.policy("dup", fx.selector_spec({"costLimits": {"maxCPUCores": 2}}))
	no_namespace := {"kind": "FinOpsPolicy", "metadata": {"name": "np"}, "spec": {}}
	ctx := {"policies": [first, last, no_namespace]}
	merged := policy.candidates with input as fx.review_with(fx.compliant, ctx)
	object.keys(merged) == {"ai-workloads/dup"}
	merged["ai-workloads/dup"].object == last
	object.keys(policy.candidates) == {"default/np"} with input as fx.review_with(fx.compliant, ctx) with input.request.namespace as "default"
}

# METADATA
# title: a policy applies to workloads of its namespace whose pod labels match
test_matching if {
	elsewhere := object.union(_other, {"metadata": {"namespace": "elsewhere"}})
	unmatched := fx.policy("unmatched", {"targetWorkloadSelector": {"matchLabels": {"app": "other"}}})
	matching := policy.matching with input as fx.review_with(fx.compliant, {"policies": [fx.seed_policy, elsewhere, unmatched]})
	matching == {fx.policy_id}
}

# METADATA
# title: non-workloads match nothing
test_non_workload if {
	service := {"kind": "Service", "metadata": {"name": "s"}}
	count(policy.matching) == 0 with input as fx.review_with(service, {"policies": [fx.seed_policy]})
	record := fx.invalid_record(fx.policy("bad", {}), [{"field": "spec.targetWorkloadSelector", "message": "is required"}], {})
	count(policy.unusable) == 0 with input as fx.review_with(service, {"invalidPolicies": [record]})
}

# METADATA
# title: an HPA matches through the workload it scales
test_hpa_subjects if {
	hpa := {
		"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
		"metadata": {"name": "inference", "namespace": fx.namespace},
		"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference"}, "maxReplicas": 3},
	}
	policy.matching == {fx.policy_id} with input as fx.review_with(hpa, {"policies": [fx.seed_policy], "workloads": [fx.compliant]})
	count(policy.matching) == 0 with input as fx.review_with(hpa, {"policies": [fx.seed_policy]})
}

# METADATA
# title: invalid policies whose enforceable part has no selector are unusable; the others match by it
test_unusable if {
	missing := fx.invalid_record(fx.policy("missing", {"costLimits": {}}), [{"field": "spec.targetWorkloadSelector", "message": "is required"}], {"costLimits": {}})
	partly := fx.invalid_record(fx.policy("partly", fx.selector_spec({"costLimits": {"maxCPUCores": -1, "maxMemoryGB": 4}})), [{"field": "spec.costLimits.maxCPUCores", "message": "x"}], fx.selector_spec({"costLimits": {"maxMemoryGB": 4}}))
	ctx := {"policies": [fx.seed_policy], "invalidPolicies": [missing, partly]}
	policy.unusable == {"ai-workloads/missing"} with input as fx.review_with(fx.compliant, ctx)
	policy.matching == {fx.policy_id, "ai-workloads/partly"} with input as fx.review_with(fx.compliant, ctx)
	policy.applying["ai-workloads/partly"].settings == {"maxMemoryGB": 4} with input as fx.review_with(fx.compliant, ctx)
}

# METADATA
# title: settings are the enforced fields of costLimits, optimizationRules and autoScale
test_settings if {
	applying := policy.applying with input as fx.seeded(fx.compliant)
	applying[fx.policy_id].settings == {
		"dailyGPUHours": 18, "maxCPUCores": 8, "maxMemoryGB": 32,
		"idleShutdownThresholdMinutes": 30, "modelQuantizationRequired": true,
		"minReplicas": 1, "maxReplicas": 3, "cpuUtilizationPercentage": 70,
	}
}

# METADATA
# title: the admitted policy's errors come from the validator's record, none when it is valid
test_admitted_errors if {
	errors := [{"field": "spec", "message": "x"}]
	record := fx.invalid_record(fx.seed_policy, errors, {})
	policy.admitted_errors == errors with input as fx.review_with(fx.seed_policy, {"invalidPolicies": [record]})
	policy.admitted_errors == [] with input as fx.review_with(fx.seed_policy, {"policies": [fx.seed_policy]})
	policy.admitted_errors == [policy.not_validated] with input as fx.review_with(fx.seed_policy, {"policies": [_other]})
}
