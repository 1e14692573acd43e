# METADATA
# title: Tests of model.signature
package edgepolicy.rules.model.signature_test

import data.edgepolicy.rules.model
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _signature
# description: 'The model.signature findings for `obj` with the fixture ModelPolicy merged with `extra` and the model outcomes `outcomes`.'
_signature(obj, extra, outcomes) := {f |
	some f in model.findings with input as fx.review_with(obj, {"policies": [fx.model_policy(extra)], "models": {fx.model_policy_id: outcomes}})
	f.rule == "model.signature"
}

# METADATA
# title: a verified model passes
test_verified if count(_signature(fx.signed(fx.compliant), {}, {"default": fx.verified(fx.facts("int8"))})) == 0

# METADATA
# title: no annotation at all is an absent signature
test_absent if {
	[f] := [f | some f in _signature(fx.compliant, {}, {})]
	f.policy == fx.model_policy_id
	f.message == "model.signature: Deployment ai-workloads/inference: no model signature: spec.template.metadata.annotations has no models.apexlogic.com/signature (or signature-configmap) annotation, but ModelPolicy ai-workloads/trusted-models requires signed models (spec.signature.required); sign the model directory with `edgepolicy model sign` and set models.apexlogic.com/signature and models.apexlogic.com/facts"
}

# METADATA
# title: a Pod is read from its own metadata
test_pod_absent if {
	pod := fx.workload("Pod", fx.pod_spec([fx.container("server", "1", "1Gi")]))
	[f] := [f | some f in _signature(pod, {}, {})]
	contains(f.message, "Pod ai-workloads/inference: no model signature: metadata.annotations has no")
}

# METADATA
# title: each reason of the verifier is shown (malformed, invalid, untrusted signer, facts digest not signed)
test_reasons if {
	some reason in [
		"the signature is malformed: not a Sigstore bundle",
		"the signature is not valid: signature does not match",
		"signed by SHA256:abc, whom the policy does not trust",
		"the facts' digest is not among the signed files",
	]
	[f] := [f | some f in _signature(fx.signed(fx.compliant), {}, {"default": fx.unverified(reason)})]
	f.message == sprintf("model.signature: Deployment ai-workloads/inference: model \"default\" (annotation models.apexlogic.com/signature) is not verified: %s; ModelPolicy ai-workloads/trusted-models requires models signed by a signer it trusts (spec.signature); sign the model directory with a trusted key and set the annotations from that signature and its edgepolicy-facts.json", [reason])
}

# METADATA
# title: a named model without an outcome is not verified; its annotation is named
test_named_without_outcome if {
	named := object.union(fx.compliant, {"spec": {"template": {"metadata": {"annotations": {"models.apexlogic.com/facts.embedder": "{}"}}}}})
	[f] := [f | some f in _signature(named, {}, {})]
	contains(f.message, "model \"embedder\" (annotation models.apexlogic.com/signature.embedder) is not verified: no verification outcome for this policy")
}

# METADATA
# title: verified true with facts that are not an object counts for nothing
test_facts_not_object if {
	[f] := [f | some f in _signature(fx.signed(fx.compliant), {}, {"default": {"verified": true, "facts": "[1]"}})]
	contains(f.message, "is not verified: the verified facts are not a JSON object")
}

# METADATA
# title: a policy not requiring signatures reports nothing on signatures
test_not_required if {
	count(_signature(fx.signed(fx.compliant), {"spec": {"signature": {"required": false}}}, {"default": fx.unverified("bad")})) == 0
}

# METADATA
# title: a policy whose selector does not match reports nothing
test_not_matching if {
	count(_signature(fx.compliant, {"spec": {"targetWorkloadSelector": {"matchLabels": {"app": "x"}}}}, {})) == 0
}

# METADATA
# title: verifyAtStart needs the pod to have the model volume
test_verify_at_start_volume if {
	extra := {"spec": {"signature": {"verifyAtStart": true, "modelVolume": "models"}}}
	[f] := [f | some f in _signature(fx.signed(fx.compliant), extra, {"default": fx.verified(fx.facts("int8"))})]
	f.message == "model.signature: Deployment ai-workloads/inference: ModelPolicy ai-workloads/trusted-models verifies the model directory at pod start (spec.signature.verifyAtStart) in volume \"models\" (spec.signature.modelVolume), but the pod has no volume of that name; mount the model directory from a volume named \"models\""
	with_volume := object.union(fx.signed(fx.compliant), {"spec": {"template": {"spec": {"volumes": [{"name": "models", "emptyDir": {}}]}}}})
	count(_signature(with_volume, extra, {"default": fx.verified(fx.facts("int8"))})) == 0
}
