# METADATA
# title: Tests of model.bias
package edgepolicy.rules.model.bias_test

import data.edgepolicy.rules.model
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _bias
# description: 'The model.bias findings for the signed compliant Deployment whose model `default` has outcome `outcome`, under the fixture ModelPolicy merged with `extra`.'
_bias(extra, outcome) := {f |
	some f in model.findings with input as fx.review_with(fx.signed(fx.compliant), {"policies": [fx.model_policy(extra)], "models": {fx.model_policy_id: {"default": outcome}}})
	f.rule == "model.bias"
}

# METADATA
# title: _with_metrics
# description: 'The fixture facts whose evaluations are `evaluations`.'
_with_metrics(evaluations) := fx.verified(object.union(fx.facts("int8"), {"evaluations": evaluations}))

# METADATA
# title: metrics equal to their thresholds pass (compared exactly)
test_at_threshold if count(_bias({}, fx.verified(fx.facts("int8")))) == 0

# METADATA
# title: a metric above its threshold for one sensitive feature is denied, naming feature, value and threshold
test_above if {
	outcome := _with_metrics([
		{"sensitive": "group", "metrics": {"demographicParityDifference": 0.04, "equalizedOddsDifference": 0.07}},
		{"sensitive": "gender", "metrics": {"demographicParityDifference": 0.23, "equalizedOddsDifference": 0.15}},
	])
	[f] := [f | some f in _bias({}, outcome)]
	f.policy == fx.model_policy_id
	f.message == "model.bias: Deployment ai-workloads/inference: model \"default\" has demographicParityDifference 0.23 for sensitive feature \"gender\", above biasThresholds.demographicParityDifference 0.1 of ModelPolicy ai-workloads/trusted-models; mitigate the model until demographicParityDifference is at most 0.1 for every sensitive feature"
}

# METADATA
# title: the smallest step above a threshold is denied (numbers are exact decimals as signed)
test_exact if {
	text := `{"evaluations": [{"sensitive": "g", "metrics": {"demographicParityDifference": 0.10000000000000000001, "equalizedOddsDifference": 0.15}}]}`
	[f] := [f | some f in _bias({}, {"verified": true, "facts": text})]
	contains(f.message, "demographicParityDifference 0.10000000000000000001 for sensitive feature \"g\", above biasThresholds.demographicParityDifference 0.1")
	at_limit := `{"evaluations": [{"sensitive": "g", "metrics": {"demographicParityDifference": 0.100, "equalizedOddsDifference": 1.5e-1}}]}`
	count(_bias({}, {"verified": true, "facts": at_limit})) == 0
}

# METADATA
# title: a metric missing while a threshold is set is denied, per sensitive feature
test_missing if {
	outcome := _with_metrics([{"sensitive": "group", "metrics": {"demographicParityDifference": 0.04}}])
	[f] := [f | some f in _bias({}, outcome)]
	f.message == "model.bias: Deployment ai-workloads/inference: model \"default\": the verified facts have no equalizedOddsDifference for sensitive feature \"group\", but ModelPolicy ai-workloads/trusted-models sets biasThresholds.equalizedOddsDifference 0.15; evaluate the model for every sensitive feature (`edgepolicy model attest --data ... --label ... --sensitive ...`) and sign it again"
	[g] := [g | some g in _bias({"spec": {"biasThresholds": {"equalizedOddsDifference": null}}}, _with_metrics([]))]
	contains(g.message, "no demographicParityDifference for any sensitive feature (no evaluations)")
}

# METADATA
# title: only the thresholds the policy sets are checked
test_only_set_thresholds if {
	outcome := _with_metrics([{"sensitive": "group", "metrics": {"demographicParityDifference": 0.5}}])
	count(_bias({"spec": {"biasThresholds": {"demographicParityDifference": null, "equalizedOddsDifference": null}}}, outcome)) == 0
}

# METADATA
# title: unverified facts count for nothing
test_unverified if {
	[f] := [f | some f in _bias({}, fx.unverified("the signature is not valid: x"))]
	f.message == "model.bias: Deployment ai-workloads/inference: model \"default\" has no verified facts (the signature is not valid: x), so ModelPolicy ai-workloads/trusted-models cannot check its biasThresholds; set annotations whose signature verifies against the policy's trust"
}

# METADATA
# title: a workload naming no model is denied
test_no_model if {
	findings := {f | some f in model.findings with input as fx.review_with(fx.compliant, {"policies": [fx.model_policy({})]}); f.rule == "model.bias"}
	[f] := [f | some f in findings]
	startswith(f.message, "model.bias: Deployment ai-workloads/inference: spec.template.metadata.annotations names no model")
}
