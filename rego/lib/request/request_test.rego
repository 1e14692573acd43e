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
