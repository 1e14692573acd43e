# METADATA
# title: Model verification at pod start
# description: |
#   For every ModelPolicy that applies with `spec.signature.verifyAtStart: true`, and every model
#   the workload names, the JSONPatch operations that make its pods verify the model directory
#   before they serve: an init container `edgepolicy-verify-<id>` running
#   `edgepolicy model verify DIR --signature FILE --public-key FILE... --certificate-chain FILE...`
#   (image and resources from settings), after the pod's own init containers (which may fetch
#   the model). DIR is `spec.signature.modelPath` (then `/<model name>` for a named model) in the
#   volume `spec.signature.modelVolume`, mounted read-only. The signature and the trusted keys
#   reach it as files of the projected volume `edgepolicy-model-verify`: the signature from the
#   pod's own annotation (downward API) or from its signature ConfigMap, the policy's keys and
#   chains from the annotations `models.apexlogic.com/verify-key.<policy>.<i>` and
#   `models.apexlogic.com/verify-chain.<policy>.<i>` this mutation sets on the pod template.
#   `<id>` and `<policy>` are the first 10 hex digits of the sha256 of `namespace/policy/model`
#   and `namespace/policy`. Equal parts already there give no operation; differing ones are
#   replaced, so applying the patch and deciding again gives no operations.
package edgepolicy.mutation.model_verify

import data.edgepolicy.lib.models
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.settings
import data.edgepolicy.lib.workload

# METADATA
# title: volume_name
# description: The projected volume that carries signatures and trust to the init containers.
volume_name := "edgepolicy-model-verify"

# METADATA
# title: _model_mount
# description: 'Where the init container mounts the model volume.'
_model_mount := "/edgepolicy/model"

# METADATA
# title: _trust_mount
# description: 'Where the init container mounts the projected volume.'
_trust_mount := "/edgepolicy/verify"

# METADATA
# title: _policies
# description: 'The applying ModelPolicies that verify at pod start, whose model volume the pod has (with its model annotations), sorted by id.'
_policies := [record |
	workload.is_workload(request.object)
	not request.is_controlled
	some id in sort(policy.model_matching)
	record := policy.model_applying[id]
	record.object.spec.signature.verifyAtStart == true
	record.object.spec.signature.modelVolume in models.volume_names
	is_object(object.get(request.object, array.concat(workload.pod_metadata_path(request.object), ["annotations"]), null))
]

# METADATA
# title: _verifications
# description: 'One record per (policy, model) to verify, sorted by container name.'
_verifications := [entry[1] |
	some entry in sort([[v.container, v] |
		some record in _policies
		some name in models.declared
		v := _verification(record, name)
	])
]

# METADATA
# title: _short_hash
# description: 'The first 10 hex digits of the sha256 of `text`.'
_short_hash(text) := substring(crypto.sha256(text), 0, 10)

# METADATA
# title: _verification
# description: 'What verifying model `name` under policy `record` needs.'
_verification(record, name) := {
	"container": concat("-", ["edgepolicy-verify", _short_hash(concat("/", [record.id, name]))]),
	"directory": _directory(record.object.spec.signature, name),
	"key": _short_hash(concat("/", [record.id, name])),
	"policy_key": _short_hash(record.id),
	"signature": record.object.spec.signature,
	"model": name,
}

# METADATA
# title: _directory
# description: 'The model directory inside the init container for model `name` under `signature` (the policy''s spec.signature).'
_directory(signature, name) := concat("/", array.concat([_model_mount], _segments(signature, name)))

# METADATA
# title: _segments
# description: 'The path segments of the model directory below the volume.'
_segments(signature, name) := [segment |
	some segment in array.concat(split(object.get(signature, "modelPath", ""), "/"), _model_segment(name))
	segment != ""
	segment != "."
]

# METADATA
# title: _model_segment
# description: 'The subdirectory of a named model (none for the default model).'
_model_segment(name) := [] if name == models.default_name

else := [name]

# METADATA
# title: _trust_files
# description: 'The trust material of `signature` (a spec.signature) as `[flag, annotation, file]`, in order.'
_trust_files(signature, policy_key) := array.concat(
	[[
		"--public-key",
		sprintf("models.apexlogic.com/verify-key.%s.%d", [policy_key, i]),
		sprintf("key-%d.pem", [i]),
	] |
		some i, _ in object.get(signature, "publicKeys", [])
	],
	[[
		"--certificate-chain",
		sprintf("models.apexlogic.com/verify-chain.%s.%d", [policy_key, i]),
		sprintf("chain-%d.pem", [i]),
	] |
		some i, _ in object.get(signature, "certificateChains", [])
	],
)

# METADATA
# title: _trust_values
# description: 'The trust annotations the mutation sets on the pod template, by annotation.'
_trust_values[annotation] := value if {
	some v in _verifications
	some i, value in object.get(v.signature, "publicKeys", [])
	annotation := sprintf("models.apexlogic.com/verify-key.%s.%d", [v.policy_key, i])
}

_trust_values[annotation] := value if {
	some v in _verifications
	some i, value in object.get(v.signature, "certificateChains", [])
	annotation := sprintf("models.apexlogic.com/verify-chain.%s.%d", [v.policy_key, i])
}

# METADATA
# title: _container
# description: 'The init container of verification `v`.'
_container(v) := {
	"name": v.container,
	"image": settings.model_verify_image,
	"imagePullPolicy": "IfNotPresent",
	"command": ["edgepolicy"],
	"args": array.concat(
		["model", "verify", v.directory, "--signature", concat("/", [_trust_mount, v.key, "signature"])],
		[arg |
			some file in _trust_files(v.signature, v.policy_key)
			some arg in [file[0], concat("/", [_trust_mount, v.key, file[2]])]
		],
	),
	"resources": {"limits": settings.model_verify_resources, "requests": settings.model_verify_resources},
	"securityContext": {
		"allowPrivilegeEscalation": false,
		"readOnlyRootFilesystem": true,
		"runAsNonRoot": true,
		"capabilities": {"drop": ["ALL"]},
	},
	"volumeMounts": [
		{"name": v.signature.modelVolume, "mountPath": _model_mount, "readOnly": true},
		{"name": volume_name, "mountPath": _trust_mount, "readOnly": true},
	],
}

# METADATA
# title: _volume
# description: 'The projected volume with every verification''s signature and trust files.'
_volume := {
	"name": volume_name,
	"projected": {
		"defaultMode": 292,
		"sources": array.concat(
			[{"downwardAPI": {"items": [item |
				some v in _verifications
				some item in _annotation_items(v)
			]}}],
			[{"configMap": {"name": name, "items": [{"key": "signature", "path": concat("/", [v.key, "signature"])}]}} |
				some v in _verifications
				name := _signature_configmap(v.model)
			],
		),
	},
}

# METADATA
# title: _annotation_items
# description: 'The downward-API items of verification `v`: its signature annotation (unless in a ConfigMap) and its trust annotations.'
_annotation_items(v) := array.concat(
	[_item(models.annotation(v.model), concat("/", [v.key, "signature"])) | not _signature_configmap(v.model)],
	[_item(file[1], concat("/", [v.key, file[2]])) | some file in _trust_files(v.signature, v.policy_key)],
)

# METADATA
# title: _item
# description: 'A downward-API item projecting annotation `annotation` to file `path`.'
_item(annotation, path) := {"path": path, "fieldRef": {"apiVersion": "v1", "fieldPath": sprintf("metadata.annotations['%s']", [annotation])}}

# METADATA
# title: _signature_configmap
# description: 'The ConfigMap model `name` is signed in, when the pod names one.'
_signature_configmap(name) := value if {
	suffix := object.get({models.default_name: ""}, name, concat("", [".", name]))
	value := workload.pod_annotations(request.object)[concat("", ["models.apexlogic.com/signature-configmap", suffix])]
	is_string(value)
}

# METADATA
# title: _spec_path
# description: 'The path of the pod spec.'
_spec_path := array.concat(workload.template_path(request.object), ["spec"])

# METADATA
# title: operations
# description: The JSONPatch operations (unordered) that inject the verification, `set()` when none.
operations contains operation if {
	count(policy.model_matching) > 0 # cheap: most objects have no ModelPolicy
	count(_verifications) > 0
	some operation in _list_operations("initContainers", [_container(v) | some v in _verifications])
}

operations contains operation if {
	count(policy.model_matching) > 0 # cheap: most objects have no ModelPolicy
	count(_verifications) > 0
	some operation in _list_operations("volumes", [_volume])
}

operations contains operation if {
	count(policy.model_matching) > 0 # cheap: most objects have no ModelPolicy
	count(_verifications) > 0
	some annotation, value in _trust_values
	object.get(workload.pod_annotations(request.object), annotation, null) != value
	path := array.concat(workload.pod_metadata_path(request.object), ["annotations"])
	operation := {"op": "add", "path": _pointer(array.concat(path, [annotation])), "value": value}
}

# METADATA
# title: _list_operations
# description: 'The operations that make the pod spec''s list `field` hold `items` (by name): added when missing, replaced when they differ.'
_list_operations(field, items) := [{"op": "add", "path": _pointer(array.concat(_spec_path, [field])), "value": items}] if {
	not is_array(object.get(request.object, array.concat(_spec_path, [field]), null))
} else := [operation |
	current := object.get(request.object, array.concat(_spec_path, [field]), [])
	some item in items
	operation := _item_operation(current, field, item)
]

# METADATA
# title: _item_operation
# description: 'The operation for one named `item` of list `field` whose current value is `current`.'
_item_operation(current, field, item) := {"op": "replace", "path": _pointer(array.concat(_spec_path, [field, sprintf("%d", [i])])), "value": item} if {
	some i, existing in current
	existing.name == item.name
	not _holds(existing, item)
} else := {"op": "add", "path": _pointer(array.concat(_spec_path, [field, "-"])), "value": item} if {
	not item.name in {existing.name | some existing in current}
}

# METADATA
# title: _holds
# description: |
#   True when `existing` is `wanted`, apart from the fields the API server defaults in a stored
#   container: anything else (an added env, command or mount) is replaced, so the verification
#   runs exactly as injected.
_holds(existing, wanted) if object.remove(existing, _defaulted) == wanted

# METADATA
# title: _defaulted
# description: 'The container fields the API server fills in when they are absent.'
_defaulted := {"terminationMessagePath", "terminationMessagePolicy"}

# METADATA
# title: _pointer
# description: '`path` as a JSON Pointer, each segment escaped (`~` as `~0`, `/` as `~1`).'
_pointer(path) := concat("/", array.concat([""], [replace(replace(sprintf("%v", [segment]), "~", "~0"), "/", "~1") | some segment in path]))
