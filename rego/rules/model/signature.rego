# model.signature: a ModelPolicy with `signature.required` admits a workload only when every model
# it names carries a signature the caller's verifier accepted against the policy's trust (part of
# package edgepolicy.rules.model, annotated in quantization.rego).
package edgepolicy.rules.model

import data.edgepolicy.lib.models
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: model.signature
# description: "A ModelPolicy with spec.signature.required applies and the workload names no model, or a model's signature is absent, malformed, invalid, signed by nobody the policy trusts, or does not cover its facts (the verifier's reason is in the message); with verifyAtStart, the pod lacks the model volume."
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#model.signature
#     description: model.signature in docs/policies.md
# custom:
#   rule: model.signature
#   summary: "Workload whose model is not signed by a signer the ModelPolicy trusts"
#   fix: "Sign the model directory (model files and `edgepolicy-facts.json`) with `edgepolicy model sign` using a key, certificate or identity the ModelPolicy's `spec.signature` trusts, and set `models.apexlogic.com/signature` (or `models.apexlogic.com/signature-configmap`) and `models.apexlogic.com/facts` from that signature and facts file, unedited."
findings contains finding if {
	count(policy.model_matching) > 0
	some finding in _signature_findings
}

# METADATA
# title: _signing_policies
# description: 'The applying ModelPolicies that require signed models.'
_signing_policies contains record if {
	workload.is_workload(request.object)
	some record in policy.model_applying
	record.object.spec.signature.required == true
}

# METADATA
# title: model.signature (absent)
# description: The workload names no model at all.
_signature_findings contains finding if {
	some record in _signing_policies
	count(models.declared) == 0
	finding := {
		"rule": "model.signature",
		"policy": record.id,
		"message": sprintf(
			"model.signature: %s: no model signature: %s has no models.apexlogic.com/signature (or signature-configmap) annotation, but ModelPolicy %s requires signed models (spec.signature.required); sign the model directory with `edgepolicy model sign` and set models.apexlogic.com/signature and models.apexlogic.com/facts",
			[request.description, models.annotations_field, record.id],
		),
	}
}

# METADATA
# title: model.signature (not verified)
# description: A model's signature is malformed, invalid, from an untrusted signer, or does not cover its facts.
_signature_findings contains finding if {
	some record in _signing_policies
	some name in models.declared
	reason := models.unverified_reason(record.id, name)
	finding := {
		"rule": "model.signature",
		"policy": record.id,
		"message": sprintf(
			"model.signature: %s: model %q (annotation %s) is not verified: %s; ModelPolicy %s requires models signed by a signer it trusts (spec.signature); sign the model directory with a trusted key and set the annotations from that signature and its edgepolicy-facts.json",
			[request.description, name, models.annotation(name), reason, record.id],
		),
	}
}

# METADATA
# title: model.signature (no model volume for verifyAtStart)
# description: A ModelPolicy verifies models at pod start but the pod has no volume of the name it gives.
_signature_findings contains finding if {
	workload.is_workload(request.object)
	some record in policy.model_applying
	record.object.spec.signature.verifyAtStart == true
	volume := record.object.spec.signature.modelVolume
	not volume in models.volume_names
	finding := {
		"rule": "model.signature",
		"policy": record.id,
		"message": sprintf(
			"model.signature: %s: ModelPolicy %s verifies the model directory at pod start (spec.signature.verifyAtStart) in volume %q (spec.signature.modelVolume), but the pod has no volume of that name; mount the model directory from a volume named %q",
			[request.description, record.id, volume, volume],
		),
	}
}
