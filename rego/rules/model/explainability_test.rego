# METADATA
# title: Tests of model.explainability
package edgepolicy.rules.model.explainability_test

import data.edgepolicy.rules.model
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _explainability
# description: 'The model.explainability findings for `obj` whose model `default` has outcome `outcome` under the fixture ModelPolicy merged with `extra`.'
_explainability(obj, extra, outcome) := {f |
	some f in model.findings with input as fx.review_with(obj, {"policies": [fx.model_policy(extra)], "models": {fx.model_policy_id: {"default": outcome}}})
	f.rule == "model.explainability"
}

# METADATA
# title: a verified report digest passes
test_report if count(_explainability(fx.signed(fx.compliant), {}, fx.verified(fx.facts("int8")))) == 0

# METADATA
# title: verified facts without a report digest are denied
test_no_report if {
	facts := object.remove(fx.facts("int8"), ["explainability"])
	[f] := [f | some f in _explainability(fx.signed(fx.compliant), {}, fx.verified(facts))]
	f.policy == fx.model_policy_id
	f.message == "model.explainability: Deployment ai-workloads/inference: model \"default\" has no explainability report digest (explainability.report.sha256) in its verified facts, but ModelPolicy ai-workloads/trusted-models requires an explainability report (spec.explainability.reportRequired); attest the model with `edgepolicy model attest --explainability-report FILE` and sign it again"
	empty := object.union(fx.facts("int8"), {"explainability": {"report": {"sha256": ""}}})
	count(_explainability(fx.signed(fx.compliant), {}, fx.verified(empty))) == 1
}

# METADATA
# title: unverified facts count for nothing
test_unverified if {
	[f] := [f | some f in _explainability(fx.signed(fx.compliant), {}, fx.unverified("signed by nobody the policy trusts"))]
	contains(f.message, "model \"default\" has no verified facts (signed by nobody the policy trusts), but ModelPolicy")
}

# METADATA
# title: a workload naming no model is denied
test_no_model if {
	findings := {f | some f in model.findings with input as fx.review_with(fx.compliant, {"policies": [fx.model_policy({})]}); f.rule == "model.explainability"}
	[f] := [f | some f in findings]
	contains(f.message, "names no model, so no explainability report can be verified")
}

# METADATA
# title: a policy not requiring a report reports nothing
test_not_required if {
	facts := object.remove(fx.facts("int8"), ["explainability"])
	count(_explainability(fx.signed(fx.compliant), {"spec": {"explainability": {"reportRequired": false}}}, fx.verified(facts))) == 0
}
