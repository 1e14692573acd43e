# METADATA
# title: The admission request
# description: |
#   Accessors for the AdmissionReview being decided: the object, its namespace, name, kind and the
#   operation. The request's namespace wins over the object's (the API server sets it); objects
#   without either are in `default`, as `kubectl apply` would place them.
package edgepolicy.lib.request

import data.edgepolicy.lib.workload

# METADATA
# title: object
# description: The object being admitted (`request.object`), or `{}` when absent or not an object.
object := input.request.object if is_object(input.request.object)

else := {}

# METADATA
# title: operation
# description: The admission operation; a request without one is treated as CREATE (fail closed).
operation := input.request.operation if is_string(input.request.operation)

else := "CREATE"

# METADATA
# title: is_evaluated
# description: |
#   True for operations the rules judge: everything except DELETE, CONNECT and the UPDATEs of an
#   object that is already being deleted.
is_evaluated if {
	not operation in {"DELETE", "CONNECT"}
	not is_finalizing
}

# METADATA
# title: is_finalizing
# description: |
#   True for an UPDATE of an object whose stored version (`oldObject`, set by the API server) already
#   has a `deletionTimestamp`: only finalizers change then, and a denial would keep it Terminating.
is_finalizing if {
	operation == "UPDATE"
	input.request.oldObject.metadata.deletionTimestamp
}

# METADATA
# title: is_controlled
# description: |
#   True when the object has a controller owner (a Deployment's ReplicaSet, a ReplicaSet's Pod, a
#   CronJob's Job): its owner is judged and mutated itself.
is_controlled if {
	some owner in object.metadata.ownerReferences
	owner.controller == true
}

# METADATA
# title: kind
# description: The kind of the object being admitted, or `""` when it has none.
kind := object.kind if is_string(object.kind)

else := ""

# METADATA
# title: namespace
# description: The namespace of the object being admitted.
namespace := input.request.namespace if _is_non_empty_string(input.request.namespace)

else := object.metadata.namespace if _is_non_empty_string(object.metadata.namespace)

else := "default"

# METADATA
# title: name
# description: The name of the object being admitted (its generateName prefix when it has no name yet).
name := object.metadata.name if _is_non_empty_string(object.metadata.name)

else := input.request.name if _is_non_empty_string(input.request.name)

else := object.metadata.generateName if _is_non_empty_string(object.metadata.generateName)

else := "<unnamed>"

# METADATA
# title: description
# description: The object as messages name it, `Kind namespace/name`.
description := sprintf("%s %s/%s", [kind, namespace, name])

# METADATA
# title: containers
# description: |
#   The container records (`workload.containers`) of the object being admitted, computed once per
#   decision for every rule that looks at containers.
containers := workload.containers(object)

# METADATA
# title: _is_non_empty_string
# description: 'True when `value` is a non-empty string.'
_is_non_empty_string(value) if {
	is_string(value)
	value != ""
}
