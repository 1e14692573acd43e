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
	in_data := {
		fx.namespace: {"edge-ai-inference-cost-policy": fx.seed_policy, "other": _other},
		"elsewhere": {"remote": _other},
	}
	merged := policy.candidates with data.edgepolicy.policies.finops as in_data
		with input as fx.review_with(fx.compliant, {"policies": [newer, {"kind": "Service"}]})
	object.keys(merged) == {fx.policy_id, "ai-workloads/other"}
	merged[fx.policy_id].object.spec.costLimits.maxCPUCores == 2
	merged[fx.policy_id].name == "edge-ai-inference-cost-policy"
	merged["ai-workloads/other"] == {"id": "ai-workloads/other", "namespace": fx.namespace, "name": "other", "object": _other}
}

# METADATA
# title: among duplicates in the context the last wins; a policy without namespace is in default
test_context_duplicates if {
	first := fx.policy("dup", fx.selector_spec({"costLimits": {"maxCPUCores": 1}}))
	last := fx.policy("dup", fx.selector_spec({"costLimits": {"maxCPUCores": 2}}))
	unnamed := {"kind": "FinOpsPolicy", "metadata": {"namespace": fx.namespace}, "spec": {}}
	no_namespace := {"kind": "FinOpsPolicy", "metadata": {"name": "np"}, "spec": {}}
	ctx := {"policies": [first, last, unnamed, no_namespace]}
	merged := policy.candidates with input as fx.review_with(fx.compliant, ctx)
	object.keys(merged) == {"ai-workloads/dup", "ai-workloads/"}
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
	count(policy.matching) == 0 with input as fx.review_with({"kind": "Service", "metadata": {"name": "s"}}, {"policies": [fx.seed_policy]})
	count(policy.unusable) == 0 with input as fx.review_with({"kind": "Service", "metadata": {"name": "s"}}, {"policies": [fx.policy("bad", {})]})
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
# title: policies with unusable selectors in the namespace are singled out
test_unusable if {
	missing := fx.policy("missing", {"costLimits": {}})
	broken := fx.policy("broken", {"targetWorkloadSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}})
	ctx := {"policies": [fx.seed_policy, missing, broken]}
	policy.unusable == {"ai-workloads/missing", "ai-workloads/broken"} with input as fx.review_with(fx.compliant, ctx)
	policy.matching == {fx.policy_id} with input as fx.review_with(fx.compliant, ctx)
}

# METADATA
# title: settings are read only when valid
test_setting if {
	policy.setting(fx.seed_policy, "costLimits", "maxCPUCores") == 8
	not policy.setting(fx.policy("p", {"costLimits": {"maxCPUCores": "8"}}), "costLimits", "maxCPUCores")
	not policy.setting(fx.policy("p", {}), "costLimits", "maxCPUCores")
	policy.max_replicas(fx.seed_policy) == 3
	policy.max_replicas(fx.policy("p", {})) == 0
	inverted := fx.policy("p", {"autoScale": {"minReplicas": 5, "maxReplicas": 3, "cpuUtilizationPercentage": 70}})
	not policy.setting(inverted, "autoScale", "minReplicas")
	not policy.setting(inverted, "autoScale", "maxReplicas")
	policy.setting(inverted, "autoScale", "cpuUtilizationPercentage") == 70
	policy.max_replicas(inverted) == 0
}
