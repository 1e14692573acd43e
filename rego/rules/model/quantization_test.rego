# METADATA
# title: Tests of model.quantization
package edgepolicy.rules.model.quantization_test

import data.edgepolicy.rules.model
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _quantization
# description: 'The model.quantization findings for the compliant Deployment with `context`.'
_quantization(context) := {f |
	some f in model.findings with input as fx.review_with(fx.compliant, context)
	f.rule == "model.quantization"
}

# METADATA
# title: _outcomes
# description: 'A context with the seed policy, the fixture ModelPolicy and the outcome `outcome` of model `default`.'
_outcomes(outcome) := {"policies": [fx.seed_policy, fx.model_policy({})], "models": {fx.model_policy_id: {"default": outcome}}}

# METADATA
# title: a workload naming no model is denied
test_no_model_denied if {
	[f] := [f | some f in model.findings with input as fx.seeded(fx.compliant)]
	f.policy == fx.policy_id
	f.message == "model.quantization: Deployment ai-workloads/inference: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy requires quantized models (optimizationRules.modelQuantizationRequired) but spec.template.metadata.annotations names no model, so no verified model facts say this workload's model is quantized; serve a quantized model, signed, with models.apexlogic.com/signature and models.apexlogic.com/facts"
}

# METADATA
# title: verified int8 and int4 facts pass
test_quantized_allowed if {
	count(_quantization(fx.quantized_context)) == 0
	count(_quantization(_outcomes(fx.verified(fx.facts("int4"))))) == 0
}

# METADATA
# title: verified facts of an fp32 or fp16 model are named with their quantization
test_not_quantized if {
	[f] := [f | some f in _quantization(_outcomes(fx.verified(fx.facts("none"))))]
	f.message == "model.quantization: Deployment ai-workloads/inference: model \"default\" is not quantized: its verified facts say quantization \"none\" (fp16 is reduced precision, not quantization), but FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy requires quantized models (optimizationRules.modelQuantizationRequired: int8 or int4); serve a quantized model whose signature a ModelPolicy applying to this workload verifies"
	[g] := [g | some g in _quantization(_outcomes(fx.verified(fx.facts("fp16"))))]
	contains(g.message, "quantization \"fp16\"")
}

# METADATA
# title: unverified facts count for nothing, with the verifier's reason
test_unverified if {
	[f] := [f | some f in _quantization(_outcomes(fx.unverified("the signature is not valid: bad digest")))]
	contains(f.message, "model \"default\" has no verified facts (ModelPolicy ai-workloads/trusted-models: the signature is not valid: bad digest)")
}

# METADATA
# title: facts claiming quantization without verified true count for nothing
test_claimed_not_verified if {
	forged := {"verified": "true", "facts": json.marshal(fx.facts("int8"))}
	[f] := [f | some f in _quantization(_outcomes(forged))]
	contains(f.message, "has no verified facts")
}

# METADATA
# title: outcomes of a ModelPolicy that does not apply count for nothing
test_other_policy_outcomes if {
	elsewhere := fx.model_policy({"spec": {"targetWorkloadSelector": {"matchLabels": {"app": "other"}}}})
	ctx := {"policies": [fx.seed_policy, elsewhere], "models": {fx.model_policy_id: {"default": fx.verified(fx.facts("int8"))}}}
	[f] := [f | some f in model.findings with input as fx.review_with(fx.signed(fx.compliant), ctx)]
	contains(f.message, "has no verified facts: no ModelPolicy applies to this workload, so no signer is trusted")
}

# METADATA
# title: every model must be verified quantized
test_every_model if {
	ctx := {"policies": [fx.seed_policy, fx.model_policy({})], "models": {fx.model_policy_id: {
		"default": fx.verified(fx.facts("int8")),
		"embedder": fx.verified(fx.facts("none")),
	}}}
	[f] := [f | some f in _quantization(ctx)]
	contains(f.message, "model \"embedder\" is not quantized")
}

# METADATA
# title: a model named only by annotations without an outcome is not verified
test_annotation_without_outcome if {
	named := object.union(fx.compliant, {"spec": {"template": {"metadata": {"annotations": {"models.apexlogic.com/signature.embedder": "{}"}}}}})
	findings := {f | some f in model.findings with input as fx.review_with(named, fx.quantized_context); f.rule == "model.quantization"}
	[f] := [f | some f in findings]
	contains(f.message, "model \"embedder\" has no verified facts (ModelPolicy ai-workloads/trusted-models: no verification outcome for this policy: the caller verified nothing, so nothing counts)")
}

# METADATA
# title: policies not requiring quantization do not judge models
test_not_required if {
	relaxed := object.union(fx.seed_policy, {"spec": {"optimizationRules": {"modelQuantizationRequired": false}}})
	count(model.findings) == 0 with input as fx.review_with(fx.compliant, {"policies": [relaxed]})
}
