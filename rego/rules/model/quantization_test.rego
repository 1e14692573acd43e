# METADATA
# title: Tests of model.quantization
package edgepolicy.rules.model_test

import data.edgepolicy.rules.model
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _found
# description: 'The model findings for the compliant Deployment with `models` facts.'
_found(models) := findings if {
	findings := model.findings with input as fx.review_with(fx.compliant, {"policies": [fx.seed_policy], "models": models})
}

# METADATA
# title: no verified facts means a violation
test_no_facts_denied if {
	[f] := [f | some f in model.findings with input as fx.seeded(fx.compliant)]
	f.message == "model.quantization: Deployment ai-workloads/inference: FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy requires quantized models (optimizationRules.modelQuantizationRequired) but no verified model facts say this workload's model is quantized; serve a quantized model whose signature the model verifier accepts"
}

# METADATA
# title: verified facts saying quantized allow the workload
test_quantized_allowed if count(_found(fx.quantized("server"))) == 0

# METADATA
# title: facts about other containers do not count
test_other_container if count(_found(fx.quantized("elsewhere"))) == 1

# METADATA
# title: a container whose facts say not quantized is named
test_not_quantized_container if {
	findings := _found({"server": {"quantized": false}})
	{[f.container, contains(f.message, "quantized: false")] | some f in findings; f.container} == {["server", true]}
	count(findings) == 2
	mixed := object.union(fx.compliant, {"spec": {"template": {"spec": {"containers": [fx.container("server", "1", "1Gi"), fx.container("helper", "1", "1Gi")]}}}})
	[g] := [g | some g in model.findings with input as fx.review_with(mixed, {"policies": [fx.seed_policy], "models": {"server": {"quantized": true}, "helper": {"format": "gguf"}}})]
	g.container == "helper"
	contains(g.message, "quantized: null")
}

# METADATA
# title: policies not requiring quantization do not judge models
test_not_required if {
	relaxed := object.union(fx.seed_policy, {"spec": {"optimizationRules": {"modelQuantizationRequired": false}}})
	count(model.findings) == 0 with input as fx.review_with(fx.compliant, {"policies": [relaxed]})
}
