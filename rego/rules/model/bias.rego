# model.bias: every fairness metric of `biasThresholds` is at most its threshold for every sensitive
# feature evaluated in the verified facts (part of package edgepolicy.rules.model, annotated in
# quantization.rego). Numbers are compared exactly as signed (decimal, never rounded).
package edgepolicy.rules.model

import data.edgepolicy.lib.models
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: model.bias
# description: "A metric of the ModelPolicy's biasThresholds is above its threshold for a sensitive feature in the model's verified facts, or missing while a threshold is set, or the model's facts are not verified."
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#model.bias
#     description: model.bias in docs/policies.md
# custom:
#   rule: model.bias
#   summary: "Model whose verified fairness metrics exceed the ModelPolicy's biasThresholds"
#   fix: "Mitigate the model until every metric is at most its threshold for every sensitive feature, evaluate it for each one (`edgepolicy model attest --data ... --label ... --sensitive ...`) and sign it again."
findings contains finding if {
	count(policy.model_matching) > 0
	some finding in _bias_findings
}

# METADATA
# title: _bias_policies
# description: 'The applying ModelPolicies with bias thresholds.'
_bias_policies contains record if {
	workload.is_workload(request.object)
	some record in policy.model_applying
	count(object.get(record.object.spec, "biasThresholds", {})) > 0
}

# METADATA
# title: model.bias (no model)
# description: The workload names no model, so its bias cannot be checked.
_bias_findings contains finding if {
	some record in _bias_policies
	count(models.declared) == 0
	finding := {
		"rule": "model.bias",
		"policy": record.id,
		"message": sprintf(
			"model.bias: %s: %s names no model (models.apexlogic.com/signature and models.apexlogic.com/facts), so ModelPolicy %s cannot check its biasThresholds; attest the model with its evaluation (`edgepolicy model attest --data ... --sensitive ...`), sign it and set the annotations",
			[request.description, models.annotations_field, record.id],
		),
	}
}

# METADATA
# title: model.bias (no verified facts)
# description: A model's facts are not verified, so its bias cannot be checked.
_bias_findings contains finding if {
	some record in _bias_policies
	some name in models.declared
	reason := models.unverified_reason(record.id, name)
	finding := {
		"rule": "model.bias",
		"policy": record.id,
		"message": sprintf(
			"model.bias: %s: model %q has no verified facts (%s), so ModelPolicy %s cannot check its biasThresholds; set annotations whose signature verifies against the policy's trust",
			[request.description, name, reason, record.id],
		),
	}
}

# METADATA
# title: model.bias (metric above threshold)
# description: A metric of one sensitive feature is above its threshold.
_bias_findings contains finding if {
	some record in _bias_policies
	some name, facts in models.facts[record.id]
	some metric, threshold in record.object.spec.biasThresholds
	is_number(threshold)
	some evaluation in _evaluations(facts)
	value := evaluation.metrics[metric]
	is_number(value)
	value > threshold
	finding := {
		"rule": "model.bias",
		"policy": record.id,
		"message": sprintf(
			"model.bias: %s: model %q has %s %s for sensitive feature %s, above biasThresholds.%s %s of ModelPolicy %s; mitigate the model until %s is at most %s for every sensitive feature",
			[
				request.description, name, metric, json.marshal(value), _feature(evaluation),
				metric, json.marshal(threshold), record.id, metric, json.marshal(threshold),
			],
		),
	}
}

# METADATA
# title: model.bias (metric missing)
# description: A metric with a threshold is missing from the verified facts (no evaluation, or one without it).
_bias_findings contains finding if {
	some record in _bias_policies
	some name, facts in models.facts[record.id]
	some metric, threshold in record.object.spec.biasThresholds
	is_number(threshold)
	some where in _missing(facts, metric)
	finding := {
		"rule": "model.bias",
		"policy": record.id,
		"message": sprintf(
			"model.bias: %s: model %q: the verified facts have no %s %s, but ModelPolicy %s sets biasThresholds.%s %s; evaluate the model for every sensitive feature (`edgepolicy model attest --data ... --label ... --sensitive ...`) and sign it again",
			[request.description, name, metric, where, record.id, metric, json.marshal(threshold)],
		),
	}
}

# METADATA
# title: _evaluations
# description: 'The evaluations of verified `facts` (`[]` when absent or not an array).'
_evaluations(facts) := facts.evaluations if is_array(facts.evaluations)

else := []

# METADATA
# title: _missing
# description: 'Where verified `facts` lack a number for `metric`, for messages.'
_missing(facts, metric) := {"for any sensitive feature (no evaluations)"} if {
	count(_evaluations(facts)) == 0
} else := {sprintf("for sensitive feature %s", [_feature(evaluation)]) |
	some evaluation in _evaluations(facts)
	not is_number(object.get(evaluation, ["metrics", metric], null))
}

# METADATA
# title: _feature
# description: 'The sensitive feature of `evaluation`, quoted, for messages.'
_feature(evaluation) := sprintf("%q", [evaluation.sensitive]) if is_string(evaluation.sensitive)

else := "(unnamed)"
