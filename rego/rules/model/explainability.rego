# model.explainability: with `explainability.reportRequired`, the verified facts hold the digest of
# an explainability report (part of package edgepolicy.rules.model, annotated in quantization.rego).
package edgepolicy.rules.model

import data.edgepolicy.lib.models
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: model.explainability
# description: "The ModelPolicy sets explainability.reportRequired and the model's verified facts hold no explainability report digest, or are not verified."
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#model.explainability
#     description: model.explainability in docs/policies.md
# custom:
#   rule: model.explainability
#   summary: "Model without a verified explainability report where the ModelPolicy requires one"
#   fix: "Produce the report (SHAP, LIME), attest it with `edgepolicy model attest --explainability-report FILE` and sign the model directory again."
findings contains finding if {
	count(policy.model_matching) > 0
	some finding in _explainability_findings
}

# METADATA
# title: _explainability_policies
# description: 'The applying ModelPolicies that require an explainability report.'
_explainability_policies contains record if {
	workload.is_workload(request.object)
	some record in policy.model_applying
	record.object.spec.explainability.reportRequired == true
}

# METADATA
# title: model.explainability (no model)
# description: The workload names no model, so no report can be verified.
_explainability_findings contains finding if {
	some record in _explainability_policies
	count(models.declared) == 0
	finding := {
		"rule": "model.explainability",
		"policy": record.id,
		"message": sprintf(
			"model.explainability: %s: %s names no model, so no explainability report can be verified, but ModelPolicy %s requires one (spec.explainability.reportRequired); attest the model with `edgepolicy model attest --explainability-report FILE`, sign it and set the annotations",
			[request.description, models.annotations_field, record.id],
		),
	}
}

# METADATA
# title: model.explainability (no report)
# description: A model has no verified facts, or its verified facts hold no report digest.
_explainability_findings contains finding if {
	some record in _explainability_policies
	some name in models.declared
	not _has_report(object.get(models.facts, [record.id, name], {}))
	finding := {
		"rule": "model.explainability",
		"policy": record.id,
		"message": sprintf(
			"model.explainability: %s: model %q has %s, but ModelPolicy %s requires an explainability report (spec.explainability.reportRequired); attest the model with `edgepolicy model attest --explainability-report FILE` and sign it again",
			[request.description, name, _report_problem(record.id, name), record.id],
		),
	}
}

# METADATA
# title: _has_report
# description: 'True when verified `facts` hold a non-empty explainability report digest.'
_has_report(facts) if {
	is_string(facts.explainability.report.sha256)
	facts.explainability.report.sha256 != ""
}

# METADATA
# title: _report_problem
# description: 'What is wrong with the report of model `name` under policy `id`, for messages.'
_report_problem(id, name) := problem if {
	problem := sprintf("no verified facts (%s)", [models.unverified_reason(id, name)])
}

else := "no explainability report digest (explainability.report.sha256) in its verified facts"
