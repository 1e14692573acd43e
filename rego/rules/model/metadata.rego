# model.metadata: every field of `requiredMetadata` is set in the verified model card metadata
# (part of package edgepolicy.rules.model, annotated in quantization.rego).
package edgepolicy.rules.model

import data.edgepolicy.lib.models
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: model.metadata
# description: "A field of the ModelPolicy's requiredMetadata is absent, null or empty in the verified model card metadata (its YAML front matter), or the model's facts are not verified."
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#model.metadata
#     description: model.metadata in docs/policies.md
# custom:
#   rule: model.metadata
#   summary: "Model card without the fields the ModelPolicy requires"
#   fix: "Add the fields to the model card's YAML front matter, attest it with `edgepolicy model attest --model-card FILE` and sign the model directory again."
findings contains finding if {
	count(policy.model_matching) > 0
	some finding in _metadata_findings
}

# METADATA
# title: _metadata_policies
# description: 'The applying ModelPolicies that require model card fields.'
_metadata_policies contains record if {
	workload.is_workload(request.object)
	some record in policy.model_applying
	count(object.get(record.object.spec, "requiredMetadata", [])) > 0
}

# METADATA
# title: model.metadata (no model)
# description: The workload names no model, so no model card can be verified.
_metadata_findings contains finding if {
	some record in _metadata_policies
	count(models.declared) == 0
	finding := {
		"rule": "model.metadata",
		"policy": record.id,
		"message": sprintf(
			"model.metadata: %s: %s names no model, so no model card can be verified, but ModelPolicy %s requires model card fields %s (spec.requiredMetadata); attest the model with `edgepolicy model attest --model-card FILE`, sign it and set the annotations",
			[request.description, models.annotations_field, record.id, _field_list(record.object.spec.requiredMetadata)],
		),
	}
}

# METADATA
# title: model.metadata (no verified facts)
# description: A model's facts are not verified, so its model card cannot be checked.
_metadata_findings contains finding if {
	some record in _metadata_policies
	some name in models.declared
	reason := models.unverified_reason(record.id, name)
	finding := {
		"rule": "model.metadata",
		"policy": record.id,
		"message": sprintf(
			"model.metadata: %s: model %q has no verified facts (%s), so ModelPolicy %s cannot check its required model card fields %s; set annotations whose signature verifies against the policy's trust",
			[request.description, name, reason, record.id, _field_list(record.object.spec.requiredMetadata)],
		),
	}
}

# METADATA
# title: model.metadata (fields missing)
# description: Required fields are missing (absent, null or empty) from the verified model card metadata.
_metadata_findings contains finding if {
	some record in _metadata_policies
	some name, facts in models.facts[record.id]
	metadata := object.get(facts, ["modelCard", "metadata"], {})
	missing := [field |
		some field in record.object.spec.requiredMetadata
		not _is_set(object.get(metadata, field, null))
	]
	count(missing) > 0
	finding := {
		"rule": "model.metadata",
		"policy": record.id,
		"message": sprintf(
			"model.metadata: %s: model %q: the verified model card metadata %s %s, required by ModelPolicy %s (spec.requiredMetadata); add %s to the model card's YAML front matter, attest and sign again",
			[request.description, name, _lacks(facts), _field_list(missing), record.id, _field_list(missing)],
		),
	}
}

# METADATA
# title: _is_set
# description: 'True for a metadata value that is set: not null, not an empty string, list or object.'
_is_set(value) if {
	value != null
	value != ""
	value != []
	value != {}
}

# METADATA
# title: _lacks
# description: 'How the missing fields are missing, for messages.'
_lacks(facts) := "lacks" if is_object(facts.modelCard.metadata)

else := "(no model card in the verified facts) lacks"

# METADATA
# title: _field_list
# description: 'Field names as `a, b, c` (sorted, deduplicated).'
_field_list(fields) := concat(", ", sort({sprintf("%v", [field]) | some field in fields}))
