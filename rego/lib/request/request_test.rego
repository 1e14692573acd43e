# METADATA
# title: Tests of the admission request accessors
package edgepolicy.lib.request_test

import data.edgepolicy.lib.request

# METADATA
# title: the request's namespace and the object's name are used
test_identity if {
	request.description == "Deployment ns/web" with input as {"request": {"namespace": "ns", "object": {"kind": "Deployment", "metadata": {"name": "web", "namespace": "other"}}}}
}

# METADATA
# title: fallbacks for namespace and name
test_fallbacks if {
	request.namespace == "obj-ns" with input as {"request": {"object": {"metadata": {"namespace": "obj-ns"}}}}
	request.namespace == "default" with input as {"request": {"namespace": "", "object": {}}}
	request.name == "req-name" with input as {"request": {"name": "req-name", "object": {"metadata": {}}}}
	request.name == "web-" with input as {"request": {"object": {"metadata": {"generateName": "web-"}}}}
	request.name == "<unnamed>" with input as {"request": {"object": {}}}
	request.kind == "" with input as {"request": {"object": {"kind": 3}}}
}

# METADATA
# title: a missing object reads as empty
test_missing_object if {
	request.object == {} with input as {"request": {"object": "oops"}}
	request.object == {} with input as {}
}

# METADATA
# title: DELETE and CONNECT are not evaluated, a missing operation is
test_operations if {
	request.is_evaluated with input as {"request": {"operation": "UPDATE"}}
	request.is_evaluated with input as {"request": {}}
	not request.is_evaluated with input as {"request": {"operation": "DELETE"}}
	not request.is_evaluated with input as {"request": {"operation": "CONNECT"}}
	request.operation == "CREATE" with input as {"request": {"operation": 7}}
}

# METADATA
# title: only an UPDATE whose stored object is being deleted is finalizing
test_finalizing if {
	stored := {"metadata": {"deletionTimestamp": "2026-11-27T06:00:00Z"}}
	request.is_finalizing with input as {"request": {"operation": "UPDATE", "oldObject": stored, "object": {}}}
	not request.is_evaluated with input as {"request": {"operation": "UPDATE", "oldObject": stored, "object": {}}}
	not request.is_finalizing with input as {"request": {"operation": "CREATE", "oldObject": stored, "object": stored}}
	not request.is_finalizing with input as {"request": {"operation": "UPDATE", "oldObject": {}, "object": stored}}
	not request.is_finalizing with input as {"request": {"operation": "UPDATE", "object": stored}}
}

# METADATA
# title: a controller owner makes an object controlled, another owner does not
test_controlled if {
	owner := {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
	request.is_controlled with input as {"request": {"object": {"metadata": {"ownerReferences": [object.union(owner, {"controller": true})]}}}}
	not request.is_controlled with input as {"request": {"object": {"metadata": {"ownerReferences": [owner]}}}}
	not request.is_controlled with input as {"request": {"object": {"metadata": {}}}}
}
