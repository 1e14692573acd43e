# METADATA
# title: Mutation
# description: |
#   The JSONPatch (RFC 6902) the mutating webhook applies to a workload that FinOpsPolicies apply
#   to, on CREATE and UPDATE:
#   - the label `finops.apexlogic.com/policy` on the object's `metadata.labels`, set to the name of
#     the first applying policy in sorted `namespace/name` order (replaced when it differs);
#   - the annotation `finops.apexlogic.com/idle-shutdown-after` on the pod template (the Pod's own
#     metadata for a Pod) when the pod template does not have it, set to `<minutes>m` with the
#     smallest `idleShutdownThresholdMinutes` of the applying policies, so that it satisfies every
#     one of them and never fights `finops.idle-shutdown`.
#   Objects with a controller owner (a Deployment's ReplicaSets, their Pods) are never patched: the
#   owner carries the mutation, and a ReplicaSet whose template differed from its Deployment's would
#   make the Deployment controller create ReplicaSets forever. Missing maps are added whole; `/` in keys is escaped as `~1`. Applying the patch and deciding
#   again gives no operations.
package edgepolicy.mutation

import data.edgepolicy.lib.decimal
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: _policy_label
# description: 'The cost-attribution label.'
_policy_label := "finops.apexlogic.com/policy"

# METADATA
# title: _idle_annotation
# description: 'The idle-shutdown annotation.'
_idle_annotation := "finops.apexlogic.com/idle-shutdown-after"

# METADATA
# title: patches
# description: The JSONPatch operations for the admitted object, sorted by path; `[]` when none.
patches := [operation |
	some entry in sort([[operation.path, operation] | some operation in _operations])
	operation := entry[1]
]

# METADATA
# title: _policies
# description: 'The policies applying to the admitted workload (`policy.applying` records), sorted by id.'
_policies := [policy.applying[id] | some id in sort(policy.matching)] if {
	workload.is_workload(request.object)
	not request.is_controlled
}

# METADATA
# title: _operations
# description: 'The JSONPatch operations, unordered.'
_operations contains operation if {
	count(_policies) > 0
	some operation in _set(["metadata", "labels"], _policy_label, _policies[0].name)
}

_operations contains operation if {
	thresholds := [record.settings.idleShutdownThresholdMinutes | some record in _policies]
	count(thresholds) > 0
	_is_object_at(workload.template_path(request.object))
	annotations_path := array.concat(workload.pod_metadata_path(request.object), ["annotations"])
	object.get(request.object, array.concat(annotations_path, [_idle_annotation]), null) == null
	value := concat("", [decimal.text(decimal.from_number(min(thresholds))), "m"])
	some operation in _set(annotations_path, _idle_annotation, value)
}

# METADATA
# title: _set
# description: 'The operations that make map `path` of the admitted object hold `key` = `value`.'
_set(path, key, value) := _set_in(object.get(request.object, path, null), path, key, value)

# METADATA
# title: _set_in
# description: 'The operations that make `current`, the map at `path` (or null), hold `key` = `value`.'
_set_in(current, path, key, value) := [] if {
	current[key] == value
} else := [{"op": "replace", "path": _key_pointer(path, key), "value": value}] if {
	current[key] != null
} else := [{"op": "add", "path": _key_pointer(path, key), "value": value}] if {
	is_object(current)
} else := [{"op": "add", "path": _pointer(path), "value": {key: value}}] if {
	_is_object_at(array.slice(path, 0, count(path) - 1))
} else := array.concat(_parents(path), [{"op": "add", "path": _pointer(path), "value": {key: value}}])

# METADATA
# title: _parents
# description: 'Operations adding the missing (or null) maps above `path`, outermost first.'
_parents(path) := [{"op": "add", "path": _pointer(prefix), "value": {}} |
	some length in numbers.range(1, count(path) - 1)
	prefix := array.slice(path, 0, length)
	not _is_object_at(prefix)
]

# METADATA
# title: _is_object_at
# description: 'True when the admitted object has an object at `path`.'
_is_object_at(path) if is_object(object.get(request.object, path, null))

# METADATA
# title: _pointer
# description: |
#   `path` as a JSON Pointer. Its segments are this package's field names (`metadata`, `labels`,
#   `spec`, ...), which hold no `~` or `/` to escape.
_pointer(path) := concat("/", array.concat([""], path))

# METADATA
# title: _key_pointer
# description: 'The JSON Pointer of `key` in the map at `path`, `key` escaped (`~` as `~0`, `/` as `~1`).'
_key_pointer(path, key) := concat("/", [_pointer(path), replace(replace(key, "~", "~0"), "/", "~1")])
