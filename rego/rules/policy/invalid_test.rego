# METADATA
# title: Tests of policy.invalid
# description: |
#   The errors are the validator's (edgepolicy.validated_policies, tested in Python); these
#   tests feed its records and check the verdicts and messages built from them.
package edgepolicy.rules.policy_test

import data.edgepolicy.rules.policy
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _cpu_error
# description: 'The validator''s error for maxCPUCores -1.'
_cpu_error := {"field": "spec.costLimits.maxCPUCores", "message": "must be a number greater than 0, got -1"}

# METADATA
# title: _order_error
# description: 'The validator''s error for minReplicas 5 above maxReplicas 3.'
_order_error := {"field": "spec.autoScale.minReplicas", "message": "must not exceed spec.autoScale.maxReplicas (5 > 3), so neither bound is enforced"}

# METADATA
# title: the seed policy admitted itself is valid when the validator says so
test_seed_admitted if {
	count(policy.findings) == 0 with input as fx.review_with(fx.seed_policy, {"policies": [fx.seed_policy]})
}

# METADATA
# title: an admitted malformed policy is reported field by field
test_admitted_malformed if {
	bad := object.union(fx.seed_policy, {"spec": {"costLimits": {"maxCPUCores": -1}, "autoScale": {"minReplicas": 5}}})
	record := fx.invalid_record(bad, [_cpu_error, _order_error], fx.selector_spec({}))
	findings := policy.findings with input as fx.review_with(bad, {"invalidPolicies": [record]})
	{f.message | some f in findings} == {
		"policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy: spec.costLimits.maxCPUCores must be a number greater than 0, got -1; fix the policy",
		"policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy: spec.autoScale.minReplicas must not exceed spec.autoScale.maxReplicas (5 > 3), so neither bound is enforced; fix the policy",
	}
	{f.policy | some f in findings} == {fx.policy_id}
}

# METADATA
# title: an error without a field is reported without a field
test_admitted_not_object if {
	obj := {"apiVersion": "policy.apexlogic.com/v1alpha1", "kind": "FinOpsPolicy", "metadata": {"name": "p", "namespace": "ns"}, "spec": "x"}
	record := {"kind": "FinOpsPolicy", "namespace": "ns", "name": "p", "errors": [{"field": "spec", "message": "must be an object, got \"x\""}], "object": {}}
	[f] := [f | some f in policy.findings with input as fx.review_with(obj, {"invalidPolicies": [record]})]
	f.message == "policy.invalid: FinOpsPolicy ns/p: spec must be an object, got \"x\"; fix the policy"
}

# METADATA
# title: an admitted policy the validator did not see is not trusted; other objects of the policy group too
test_admitted_not_validated if {
	[f] := [f | some f in policy.findings with input as fx.review(fx.seed_policy)]
	f.message == "policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy: was not validated when it was loaded (edgepolicy validates every policy against its CRD when it builds a bundle, loads --policies, reads the cluster or checks files), so it is not trusted; fix the policy"
	forged := fx.review_with(fx.seed_policy, {"policies": [fx.seed_policy], "policiesValidated": false})
	count(policy.findings) == 1 with input as forged
	model := {"apiVersion": "policy.apexlogic.com/v1alpha1", "kind": "ModelPolicy", "metadata": {"name": "m", "namespace": fx.namespace}, "spec": {}}
	count(policy.findings) == 1 with input as fx.review(model)
	count(policy.findings) == 0 with input as fx.review_with(model, {"policies": [model]})
	count(policy.findings) == 0 with input as fx.review({"apiVersion": "other.example/v1", "kind": "FinOpsPolicy", "metadata": {"name": "x"}})
}

# METADATA
# title: a malformed policy that applies to a workload is reported on it
test_applying_malformed if {
	bad := object.union(fx.seed_policy, {"spec": {"costLimits": {"maxMemoryGB": "32Gi"}}})
	error := {"field": "spec.costLimits.maxMemoryGB", "message": "must be a number greater than 0, got \"32Gi\""}
	record := fx.invalid_record(bad, [error], object.remove(fx.seed_policy.spec, {"costLimits"}))
	[f] := [f | some f in policy.findings with input as fx.review_with(fx.compliant, {"invalidPolicies": [record]})]
	f.message == "policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy, which applies to Deployment ai-workloads/inference, is malformed: spec.costLimits.maxMemoryGB must be a number greater than 0, got \"32Gi\"; fix the policy (until then only its valid fields are enforced)"
}

# METADATA
# title: a policy without a usable selector is reported on every workload of its namespace
test_unusable_selector if {
	headless := fx.policy("headless", {"costLimits": {"maxCPUCores": 1}})
	error := {"field": "spec.targetWorkloadSelector", "message": "is required: a label selector with matchLabels and/or matchExpressions"}
	record := fx.invalid_record(headless, [error], {"costLimits": {"maxCPUCores": 1}})
	[f] := [f | some f in policy.findings with input as fx.review_with(fx.compliant, {"invalidPolicies": [record]})]
	f.policy == "ai-workloads/headless"
	f.message == "policy.invalid: FinOpsPolicy ai-workloads/headless, which may apply to Deployment ai-workloads/inference, is malformed: spec.targetWorkloadSelector is required: a label selector with matchLabels and/or matchExpressions; fix the policy (until then it enforces nothing else)"
	elsewhere := object.union(fx.compliant, {"metadata": {"namespace": "elsewhere"}})
	count(policy.findings) == 0 with input as fx.review_with(elsewhere, {"invalidPolicies": [record]})
}

# METADATA
# title: invalid policies in data (serve --policies) are reported like those of the context
test_invalid_in_data if {
	bad := object.union(fx.seed_policy, {"spec": {"costLimits": {"maxCPUCores": -1}}})
	record := fx.invalid_record(bad, [_cpu_error], object.remove(fx.seed_policy.spec, {"costLimits"}))
	policies := {"validated": true, "finops": {}, "invalid": {fx.namespace: [record]}}
	[f] := [f | some f in policy.findings with input as fx.review(fx.compliant) with data.edgepolicy.policies as policies]
	contains(f.message, "which applies to Deployment ai-workloads/inference, is malformed: spec.costLimits.maxCPUCores must be a number greater than 0, got -1")
}

# METADATA
# title: policies in data or context without the validator's mark are reported on every workload of their namespace
test_not_validated_sources if {
	[f] := [f | some f in policy.findings with input as fx.review(fx.compliant) with data.edgepolicy.policies.finops as {fx.namespace: {"edge-ai-inference-cost-policy": fx.seed_policy}}]
	f.message == "policy.invalid: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy, which may apply to Deployment ai-workloads/inference, is malformed: was not validated when it was loaded (edgepolicy validates every policy against its CRD when it builds a bundle, loads --policies, reads the cluster or checks files), so it is not trusted; fix the policy (until then it enforces nothing else)"
	[g] := [g | some g in policy.findings with input as fx.review_with(fx.compliant, {"policies": [fx.seed_policy], "policiesValidated": false})]
	g.message == f.message
	nameless := object.remove(fx.seed_policy, {"metadata"})
	[h] := [h | some h in policy.findings with input as fx.review_with(fx.compliant, {"policies": [nameless], "policiesValidated": false}) with input.request.namespace as "default"]
	contains(h.message, "FinOpsPolicy default/, which may apply to")
}
