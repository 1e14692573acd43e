# METADATA
# title: Tests of model.metadata
package edgepolicy.rules.model.metadata_test

import data.edgepolicy.rules.model
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _metadata
# description: 'The model.metadata findings for the signed compliant Deployment whose model `default` has outcome `outcome` under the fixture ModelPolicy.'
_metadata(outcome) := {f |
	some f in model.findings with input as fx.review_with(fx.signed(fx.compliant), {"policies": [fx.model_policy({})], "models": {fx.model_policy_id: {"default": outcome}}})
	f.rule == "model.metadata"
}

# METADATA
# title: a card with every required field passes
test_complete if count(_metadata(fx.verified(fx.facts("int8")))) == 0

# METADATA
# title: missing, null and empty fields are listed in one finding
test_missing if {
	card := {"modelCard": {"metadata": {"license": "apache-2.0", "intended_use": null, "limitations": ""}}}
	facts := object.union(fx.facts("int8"), card)
	[f] := [f | some f in _metadata(fx.verified(facts))]
	f.policy == fx.model_policy_id
	f.message == "model.metadata: Deployment ai-workloads/inference: model \"default\": the verified model card metadata lacks intended_use, limitations, required by ModelPolicy ai-workloads/trusted-models (spec.requiredMetadata); add intended_use, limitations to the model card's YAML front matter, attest and sign again"
}

# METADATA
# title: facts without a model card lack every field
test_no_card if {
	[f] := [f | some f in _metadata(fx.verified(object.remove(fx.facts("int8"), ["modelCard"])))]
	contains(f.message, "the verified model card metadata (no model card in the verified facts) lacks intended_use, license, limitations, required by")
}

# METADATA
# title: unverified facts count for nothing
test_unverified if {
	[f] := [f | some f in _metadata(fx.unverified("the facts' digest is not among the signed files"))]
	f.message == "model.metadata: Deployment ai-workloads/inference: model \"default\" has no verified facts (the facts' digest is not among the signed files), so ModelPolicy ai-workloads/trusted-models cannot check its required model card fields intended_use, license, limitations; set annotations whose signature verifies against the policy's trust"
}

# METADATA
# title: a workload naming no model is denied
test_no_model if {
	findings := {f | some f in model.findings with input as fx.review_with(fx.compliant, {"policies": [fx.model_policy({})]}); f.rule == "model.metadata"}
	[f] := [f | some f in findings]
	contains(f.message, "names no model, so no model card can be verified, but ModelPolicy ai-workloads/trusted-models requires model card fields intended_use, license, limitations (spec.requiredMetadata)")
}
