# METADATA
# title: Model rules
# description: |
#   The rules on the models a workload serves, judged on verified facts only: facts whose
#   signature the caller's verifier accepted against the trust of a ModelPolicy that applies
#   (`input.context.models`, read through `data.edgepolicy.lib.models`; never the annotations
#   themselves). `model.signature`, `model.bias`, `model.explainability` and `model.metadata`
#   enforce ModelPolicies (one file each); `model.quantization` (here) enforces a FinOpsPolicy's
#   `optimizationRules.modelQuantizationRequired`: every model the workload names must have facts,
#   verified by any ModelPolicy that applies, saying it is quantized (`int8` or `int4`); a
#   workload naming no model is a violation.
package edgepolicy.rules.model

import data.edgepolicy.lib.models
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: _required_policies
# description: 'The applying FinOpsPolicies that require quantized models.'
_required_policies contains record if {
	workload.is_workload(request.object)
	some record in policy.applying
	record.settings.modelQuantizationRequired == true
}

# METADATA
# title: model.quantization (no model)
# description: The workload names no model, so nothing says it is quantized.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#model.quantization
#     description: model.quantization in docs/policies.md
# custom:
#   rule: model.quantization
#   description: "The FinOpsPolicy requires quantized models (optimizationRules.modelQuantizationRequired) and a model the workload names has no facts, verified by a ModelPolicy that applies to it (never the annotations themselves), saying it is quantized (int8 or int4), or the workload names no model."
#   summary: "Workload without a verified quantized model where the FinOpsPolicy requires one"
#   fix: "Serve an int8 or int4 model, attested (`edgepolicy model attest`) and signed (`edgepolicy model sign`) by a signer a ModelPolicy of the namespace trusts, with its `models.apexlogic.com/signature` and `models.apexlogic.com/facts` annotations; or roll the rule out in `warn` mode (`edgepolicy.settings.enforcementActions`) until your models are signed."
findings contains finding if {
	some record in _required_policies
	count(models.declared) == 0
	finding := {
		"rule": "model.quantization",
		"policy": record.id,
		"message": sprintf(
			"model.quantization: %s: FinOpsPolicy %s requires quantized models (optimizationRules.modelQuantizationRequired) but %s names no model, so no verified model facts say this workload's model is quantized; serve a quantized model, signed, with models.apexlogic.com/signature and models.apexlogic.com/facts",
			[request.description, record.id, models.annotations_field],
		),
	}
}

# METADATA
# title: model.quantization (model not verified quantized)
# description: A model named by the workload has no verified facts saying it is quantized.
findings contains finding if {
	some record in _required_policies
	some name in models.declared
	not models.is_quantized(name)
	finding := {
		"rule": "model.quantization",
		"policy": record.id,
		"message": sprintf(
			"model.quantization: %s: model %q %s, but FinOpsPolicy %s requires quantized models (optimizationRules.modelQuantizationRequired: int8 or int4); serve a quantized model whose signature a ModelPolicy applying to this workload verifies",
			[request.description, name, _why_not(name), record.id],
		),
	}
}

# METADATA
# title: _why_not
# description: 'Why model `name` does not count as quantized, for messages.'
_why_not(name) := sprintf("is not quantized: its verified facts say quantization %s (fp16 is reduced precision, not quantization)", [concat(" / ", values)]) if {
	values := {json.marshal(object.get(facts, ["model", "quantization"], null)) |
		some id in policy.model_matching
		facts := models.facts[id][name]
	}
	count(values) > 0
} else := "has no verified facts: no ModelPolicy applies to this workload, so no signer is trusted" if {
	count(policy.model_matching) == 0
} else := sprintf("has no verified facts (%s)", [concat("; ", reasons)]) if {
	reasons := sort([sprintf("ModelPolicy %s: %s", [id, models.unverified_reason(id, name)]) | some id in policy.model_matching])
}
