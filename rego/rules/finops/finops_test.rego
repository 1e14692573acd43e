# METADATA
# title: Tests of what the finops rules apply to
package edgepolicy.rules.finops_test

import data.edgepolicy.rules.finops
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: a compliant workload has no finops findings
test_compliant if count(finops.findings) == 0 with input as fx.seeded(fx.compliant)

# METADATA
# title: other kinds and other namespaces are not judged
test_not_applicable if {
	service := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "inference", "namespace": fx.namespace}}
	count(finops.findings) == 0 with input as fx.seeded(service)
	elsewhere := object.union(fx.deployment(9, [{"name": "bare"}]), {"metadata": {"namespace": "elsewhere"}})
	count(finops.findings) == 0 with input as fx.seeded(elsewhere)
}

# METADATA
# title: every matching policy applies
test_several_policies if {
	strict := fx.policy("strict", fx.selector_spec({"costLimits": {"maxCPUCores": 1}}))
	findings := finops.findings with input as fx.review_with(fx.compliant, {"policies": [fx.seed_policy, strict]})
	{[f.rule, f.policy] | some f in findings} == {["finops.cpu", "ai-workloads/strict"]}
}

# METADATA
# title: policies from data apply like those from the context
test_policies_from_data if {
	strict := fx.policy("strict", fx.selector_spec({"costLimits": {"maxCPUCores": 1}}))
	findings := finops.findings with input as fx.review(fx.compliant) with data.edgepolicy.policies as {"validated": true, "finops": {fx.namespace: {"strict": strict}}}
	{f.policy | some f in findings} == {"ai-workloads/strict"}
}

# METADATA
# title: matchExpressions select workloads too
test_match_expressions if {
	by_expression := fx.policy("expr", {
		"targetWorkloadSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["production-edge", "staging-edge"]}]},
		"costLimits": {"maxCPUCores": 1},
	})
	count(finops.findings) == 1 with input as fx.review_with(fx.compliant, {"policies": [by_expression]})
}
