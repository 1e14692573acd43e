# METADATA
# title: Tests of model verification at pod start
package edgepolicy.mutation.model_verify_test

import data.edgepolicy.mutation
import data.edgepolicy.mutation.model_verify
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _key
# description: 'The fixture ModelPolicy''s public key.'
_key := fx.model_policy({}).spec.signature.publicKeys[0]

# METADATA
# title: _policy
# description: 'The fixture ModelPolicy verifying at start in volume `models`, merged with `extra` signature fields.'
_policy(extra) := fx.model_policy({"spec": {"signature": object.union({"verifyAtStart": true, "modelVolume": "models", "modelPath": "v1"}, extra)}})

# METADATA
# title: _workload
# description: 'The signed compliant Deployment with an emptyDir volume `models`, merged with `extra`.'
_workload(extra) := object.union(
	fx.signed(object.union(fx.compliant, {"spec": {"template": {"spec": {"volumes": [{"name": "models", "emptyDir": {}}]}}}})),
	extra,
)

# METADATA
# title: _ops
# description: 'The model-verification operations for `obj` under `policy`.'
_ops(obj, policy) := {op | some op in model_verify.operations with input as fx.review_with(obj, {"policies": [policy]})}

# METADATA
# title: _id
# description: 'The short hash of policy/model `text`.'
_id(text) := substring(crypto.sha256(text), 0, 10)

# METADATA
# title: the init container, its projected volume and the trust annotation are injected
test_injected if {
	ops := _ops(_workload({}), _policy({}))
	id := _id("ai-workloads/trusted-models/default")
	policy_key := _id("ai-workloads/trusted-models")
	annotation := sprintf("models.apexlogic.com/verify-key.%s.0", [policy_key])
	ops == {
		{"op": "add", "path": "/spec/template/spec/initContainers", "value": [{
			"name": sprintf("edgepolicy-verify-%s", [id]),
			"image": "ghcr.io/apexlogic/edgepolicy:0.1.0",
			"imagePullPolicy": "IfNotPresent",
			"command": ["edgepolicy"],
			"args": [
				"model", "verify", "/edgepolicy/model/v1",
				"--signature", sprintf("/edgepolicy/verify/%s/signature", [id]),
				"--public-key", sprintf("/edgepolicy/verify/%s/key-0.pem", [id]),
			],
			"resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "500m", "memory": "256Mi"}},
			"securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
			"volumeMounts": [
				{"name": "models", "mountPath": "/edgepolicy/model", "readOnly": true},
				{"name": "edgepolicy-model-verify", "mountPath": "/edgepolicy/verify", "readOnly": true},
			],
		}]},
		{"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "edgepolicy-model-verify", "projected": {"defaultMode": 292, "sources": [{"downwardAPI": {"items": [
			{"path": sprintf("%s/signature", [id]), "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations['models.apexlogic.com/signature']"}},
			{"path": sprintf("%s/key-0.pem", [id]), "fieldRef": {"apiVersion": "v1", "fieldPath": sprintf("metadata.annotations['%s']", [annotation])}},
		]}}]}}},
		{"op": "add", "path": sprintf("/spec/template/metadata/annotations/%s", [replace(annotation, "/", "~1")]), "value": _key},
	}
}

# METADATA
# title: applying the patch and deciding again gives no operations, also with API-server defaults
test_idempotent if {
	input_doc := fx.review_with(_workload({}), {"policies": [_policy({})]})
	patched := json.patch(_workload({}), mutation.patches) with input as input_doc
	count(_ops(patched, _policy({}))) == 0
	defaulted := json.patch(patched, [{"op": "add", "path": "/spec/template/spec/initContainers/0/terminationMessagePath", "value": "/dev/termination-log"}])
	count(_ops(defaulted, _policy({}))) == 0
	tampered := json.patch(patched, [{"op": "add", "path": "/spec/template/spec/initContainers/0/env", "value": [{"name": "PATH", "value": "/tmp"}]}])
	{op.path | some op in _ops(tampered, _policy({}))} == {"/spec/template/spec/initContainers/0"}
}

# METADATA
# title: a changed container or volume is replaced in place, a new key annotated
test_replaced if {
	input_doc := fx.review_with(_workload({}), {"policies": [_policy({})]})
	patched := json.patch(_workload({}), mutation.patches) with input as input_doc
	second := "-----BEGIN PUBLIC KEY-----\nMFkwEw\n-----END PUBLIC KEY-----\n"
	ops := _ops(patched, _policy({"publicKeys": [_key, second], "modelPath": ""}))
	{[op.op, op.path] | some op in ops} == {
		["replace", "/spec/template/spec/initContainers/0"],
		["replace", "/spec/template/spec/volumes/1"],
		["add", sprintf("/spec/template/metadata/annotations/models.apexlogic.com~1verify-key.%s.1", [_id("ai-workloads/trusted-models")])],
	}
	some op in ops
	op.op == "replace"
	op.value.args[2] == "/edgepolicy/model"
	count(op.value.args) == 9
}

# METADATA
# title: user init containers stay first; the verification is appended after them
test_after_user_init_containers if {
	fetch := {"name": "fetch-model", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
	obj := _workload({"spec": {"template": {"spec": {"initContainers": [fetch]}}}})
	{op.path | some op in _ops(obj, _policy({}))} == {
		"/spec/template/spec/initContainers/-",
		"/spec/template/spec/volumes/-",
		sprintf("/spec/template/metadata/annotations/models.apexlogic.com~1verify-key.%s.0", [_id("ai-workloads/trusted-models")]),
	}
}

# METADATA
# title: named models in subdirectories, a signature ConfigMap and certificate chains
test_named_configmap_chains if {
	annotations := {"models.apexlogic.com/signature-configmap.llm": "llm-sig", "models.apexlogic.com/facts.llm": "{}"}
	obj := object.union(fx.compliant, {"spec": {"template": {
		"metadata": {"annotations": annotations},
		"spec": {"volumes": [{"name": "models", "emptyDir": {}}]},
	}}})
	ops := _ops(obj, _policy({"publicKeys": null, "certificateChains": ["-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"]}))
	id := _id("ai-workloads/trusted-models/llm")
	some container_op in ops
	container_op.path == "/spec/template/spec/initContainers"
	container_op.value[0].args == [
		"model", "verify", "/edgepolicy/model/v1/llm",
		"--signature", sprintf("/edgepolicy/verify/%s/signature", [id]),
		"--certificate-chain", sprintf("/edgepolicy/verify/%s/chain-0.pem", [id]),
	]
	some volume_op in ops
	volume_op.path == "/spec/template/spec/volumes/-"
	volume_op.value.projected.sources[1] == {"configMap": {"name": "llm-sig", "items": [{"key": "signature", "path": sprintf("%s/signature", [id])}]}}
	[item.path | some item in volume_op.value.projected.sources[0].downwardAPI.items] == [sprintf("%s/chain-0.pem", [id])]
}

# METADATA
# title: the image and resources come from settings
test_settings if {
	ops := _ops(_workload({}), _policy({})) with data.edgepolicy.settings.modelVerifyImage as "registry.local/edgepolicy:1"
		with data.edgepolicy.settings.modelVerifyResources as {"cpu": "1", "memory": "1Gi"}
	some op in ops
	op.path == "/spec/template/spec/initContainers"
	op.value[0].image == "registry.local/edgepolicy:1"
	op.value[0].resources.limits == {"cpu": "1", "memory": "1Gi"}
}

# METADATA
# title: nothing without verifyAtStart, the model volume, model annotations, or for controlled objects
test_nothing if {
	count(_ops(_workload({}), fx.model_policy({}))) == 0
	count(_ops(_workload({}), _policy({"modelVolume": "weights"}))) == 0
	count(_ops(object.union(fx.compliant, {"spec": {"template": {"spec": {"volumes": [{"name": "models"}]}}}}), _policy({}))) == 0
	controlled := _workload({"metadata": {"ownerReferences": [{"controller": true, "kind": "Deployment", "name": "x"}]}})
	count(_ops(controlled, _policy({}))) == 0
}

# METADATA
# title: a Pod is patched at its own spec and metadata
test_pod if {
	pod := object.union(fx.workload("Pod", {"containers": [fx.container("server", "1", "1Gi")], "volumes": [{"name": "models"}]}), {"metadata": {"annotations": {"models.apexlogic.com/signature": "{}"}}})
	{op.path | some op in _ops(pod, _policy({}))} == {
		"/spec/initContainers",
		"/spec/volumes/-",
		sprintf("/metadata/annotations/models.apexlogic.com~1verify-key.%s.0", [_id("ai-workloads/trusted-models")]),
	}
}
