# METADATA
# title: Model rules
# description: |
#   `model.quantization`: a FinOpsPolicy with `optimizationRules.modelQuantizationRequired: true`
#   admits a workload only when verified model facts (`input.context.models`, keyed by container
#   name, filled by the model-signature verifier and never from annotations) say its model is
#   quantized (`"quantized": true`): at least one container must have such facts, and no container
#   may have facts saying otherwise. No facts at all is a violation.
package edgepolicy.rules.model

import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: _required_policies
# description: 'The applying policies that require quantized models.'
_required_policies contains record if {
	workload.is_workload(request.object)
	some record in policy.applying
	record.settings.modelQuantizationRequired == true
}

# METADATA
# title: _container_names
# description: 'The names of the admitted workload''s containers.'
_container_names := {container.name | some container in request.containers}

# METADATA
# title: _quantized_containers
# description: 'The containers whose verified facts say their model is quantized.'
_quantized_containers := {name |
	some name in _container_names
	input.context.models[name].quantized == true
}

# METADATA
# title: model.quantization (no verified quantized model)
# description: No container of the workload has verified facts saying its model is quantized.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#model.quantization
#     description: model.quantization in docs/policies.md
# custom:
#   rule: model.quantization
#   description: "The FinOpsPolicy requires quantized models (optimizationRules.modelQuantizationRequired) and the workload's verified model facts (from the model-signature verifier, never from annotations) do not say its model is quantized: no container has facts with quantized true, or one has facts saying otherwise."
#   summary: "Workload without a verified quantized model where the FinOpsPolicy requires one"
#   fix: "Serve a quantized model whose signature the model verifier accepts, or roll the rule out in `warn` mode (`edgepolicy.settings.enforcementActions`) until your models are signed."
findings contains finding if {
	some record in _required_policies
	count(_quantized_containers) == 0
	finding := {
		"rule": "model.quantization",
		"policy": record.id,
		"message": sprintf(
			"model.quantization: %s: FinOpsPolicy %s requires quantized models (optimizationRules.modelQuantizationRequired) but no verified model facts say this workload's model is quantized; serve a quantized model whose signature the model verifier accepts",
			[request.description, record.id],
		),
	}
}

# METADATA
# title: model.quantization (container with a non-quantized model)
# description: A container's verified facts say its model is not quantized.
findings contains finding if {
	some record in _required_policies
	some name in _container_names
	facts := input.context.models[name]
	not facts.quantized == true
	finding := {
		"rule": "model.quantization",
		"policy": record.id,
		"container": name,
		"message": sprintf(
			"model.quantization: %s: container %q serves a model that verified facts say is not quantized (quantized: %s), but FinOpsPolicy %s requires quantized models; serve a quantized model",
			[request.description, name, json.marshal(object.get(facts, "quantized", null)), record.id],
		),
	}
}
