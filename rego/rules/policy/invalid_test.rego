# METADATA
# title: Tests of policy.invalid
package edgepolicy.rules.policy_test

import data.edgepolicy.rules.policy
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: the seed policy admitted itself is valid
test_seed_admitted if count(policy.findings) == 0 with input as fx.review(fx.seed_policy)

# METADATA
# title: an admitted malformed policy is reported field by field
test_admitted_malformed if {
	bad := object.union(fx.seed_policy, {"spec": {"costLimits": {"maxCPUCores": -1}, "autoScale": {"minReplicas": 5}}})
	findings := policy.findings with input as fx.review(bad)
	{f.message | some f in findings} == {
		"policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy: spec.costLimits.maxCPUCores must be a number greater than 0, got -1; fix the policy",
		"policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy: spec.autoScale.minReplicas must not exceed spec.autoScale.maxReplicas (5 > 3), so neither bound is enforced; fix the policy",
	}
	{f.policy | some f in findings} == {fx.policy_id}
}

# METADATA
# title: a policy that is not an object is reported without a field
test_admitted_not_object if {
	[f] := [f | some f in policy.findings with input as {"request": {"namespace": "ns", "object": {"kind": "FinOpsPolicy", "metadata": {"name": "p"}, "spec": "x"}}}]
	f.message == "policy.invalid: FinOpsPolicy ns/p: spec must be an object, got \"x\"; fix the policy"
}

# METADATA
# title: a malformed policy that applies to a workload is reported on it
test_applying_malformed if {
	bad := object.union(fx.seed_policy, {"spec": {"costLimits": {"maxMemoryGB": "32Gi"}}})
	[f] := [f | some f in policy.findings with input as fx.review_with(fx.compliant, {"policies": [bad]})]
	f.message == "policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy, which applies to Deployment ai-workloads/inference, is malformed: spec.costLimits.maxMemoryGB must be a number greater than 0, got \"32Gi\"; fix the policy (until then only its valid fields are enforced)"
}

# METADATA
# title: a policy without a usable selector is reported on every workload of its namespace
test_unusable_selector if {
	headless := fx.policy("headless", {"costLimits": {"maxCPUCores": 1}})
	[f] := [f | some f in policy.findings with input as fx.review_with(fx.compliant, {"policies": [headless]})]
	f.policy == "ai-workloads/headless"
	contains(f.message, "FinOpsPolicy ai-workloads/headless, which may apply to Deployment ai-workloads/inference, is malformed: spec.targetWorkloadSelector is required")
	elsewhere := object.union(fx.compliant, {"metadata": {"namespace": "elsewhere"}})
	count(policy.findings) == 0 with input as fx.review_with(elsewhere, {"policies": [headless]})
}

# METADATA
# title: a policy without spec fails closed on its namespace's workloads and when admitted itself
test_missing_spec if {
	mis_indented := object.union(object.remove(fx.seed_policy, {"spec"}), {"targetWorkloadSelector": {"matchLabels": fx.labels}})
	on_workload := {f.message | some f in policy.findings with input as fx.review_with(fx.compliant, {"policies": [mis_indented]})}
	"policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy, which may apply to Deployment ai-workloads/inference, is malformed: spec is required: an object with targetWorkloadSelector and the limits to enforce; fix the policy (until then it enforces nothing else)" in on_workload
	admitted := {f.message | some f in policy.findings with input as fx.review(mis_indented)}
	"policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy: targetWorkloadSelector unknown field (known: apiVersion, kind, metadata, spec, status); it belongs under spec; fix the policy" in admitted
}

# METADATA
# title: a ModelPolicy without a usable selector is reported on every workload of its namespace
test_model_policy_unusable if {
	bad := fx.model_policy({"spec": {"targetWorkloadSelector": {"matchLabels": {"app": 3}}}})
	no_selector := object.union(fx.model_policy({}), {"metadata": {"name": "no-selector"}, "spec": {"targetWorkloadSelector": null}})
	findings := {f.policy: f.message |
		some f in data.edgepolicy.rules.policy.findings with input as fx.review_with(fx.compliant, {"policies": [bad, no_selector]})
	}
	object.keys(findings) == {fx.model_policy_id, "ai-workloads/no-selector"}
	startswith(findings[fx.model_policy_id], "policy.invalid: ModelPolicy ai-workloads/trusted-models, which may apply to Deployment ai-workloads/inference, is malformed: spec.targetWorkloadSelector.matchLabels")
	findings["ai-workloads/no-selector"] == "policy.invalid: ModelPolicy ai-workloads/no-selector, which may apply to Deployment ai-workloads/inference, is malformed: spec.targetWorkloadSelector is required: a label selector with matchLabels and/or matchExpressions; fix the policy (until then it enforces nothing else)"
}
