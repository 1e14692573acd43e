# METADATA
# title: Tests of the mutation patches
package edgepolicy.mutation_test

import data.edgepolicy.mutation
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _label
# description: 'The operation adding the labels map with the seed policy''s name.'
_label := {"op": "add", "path": "/metadata/labels", "value": {"finops.apexlogic.com/policy": "edge-ai-inference-cost-policy"}}

# METADATA
# title: _patches
# description: 'The patches for `obj` with the seed policy in the context.'
_patches(obj) := patches if {
	patches := mutation.patches with input as fx.seeded(obj)
}

# METADATA
# title: absent maps are added whole, keys escaped
test_absent_maps if {
	_patches(fx.compliant) == [
		_label,
		{"op": "add", "path": "/spec/template/metadata/annotations", "value": {"finops.apexlogic.com/idle-shutdown-after": "30m"}},
	]
}

# METADATA
# title: existing maps get single keys with / escaped as ~1
test_existing_maps if {
	obj := object.union(fx.compliant, {"metadata": {"labels": {"team": "ml"}}, "spec": {"template": {"metadata": {"annotations": {"x": "y"}}}}})
	_patches(obj) == [
		{"op": "add", "path": "/metadata/labels/finops.apexlogic.com~1policy", "value": "edge-ai-inference-cost-policy"},
		{"op": "add", "path": "/spec/template/metadata/annotations/finops.apexlogic.com~1idle-shutdown-after", "value": "30m"},
	]
}

# METADATA
# title: applying the patch and deciding again gives no operations
test_idempotent if {
	once := json.patch(fx.compliant, _patches(fx.compliant))
	_patches(once) == []
	pod := fx.workload("Pod", fx.pod_spec([fx.container("a", "1", "1Gi")]))
	_patches(json.patch(pod, _patches(pod))) == []
}

# METADATA
# title: a present annotation is left to validation; a stale label is replaced
test_present_values if {
	obj := object.union(fx.compliant, {
		"metadata": {"labels": {"finops.apexlogic.com/policy": "old"}},
		"spec": {"template": {"metadata": {"annotations": {"finops.apexlogic.com/idle-shutdown-after": "10m"}}}},
	})
	_patches(obj) == [{"op": "replace", "path": "/metadata/labels/finops.apexlogic.com~1policy", "value": "edge-ai-inference-cost-policy"}]
}

# METADATA
# title: the patched annotation satisfies finops.idle-shutdown
test_never_fights_validation if {
	once := json.patch(fx.compliant, _patches(fx.compliant))
	count([f | some f in data.edgepolicy.rules.finops.findings with input as fx.seeded(once); f.rule == "finops.idle-shutdown"]) == 0
}

# METADATA
# title: a threshold with more than three decimals is written exactly, so it never fights finops.idle-shutdown
test_exact_threshold_never_fights_validation if {
	p := fx.policy("p", fx.selector_spec({"optimizationRules": {"idleShutdownThresholdMinutes": 30.0005}}))
	patches := mutation.patches with input as fx.review_with(fx.compliant, {"policies": [p]})
	patches[1].value == {"finops.apexlogic.com/idle-shutdown-after": "30.0005m"}
	once := json.patch(fx.compliant, patches)
	count([f | some f in data.edgepolicy.rules.finops.findings with input as fx.review_with(once, {"policies": [p]}); f.rule == "finops.idle-shutdown"]) == 0
}

# METADATA
# title: Pods get both on their own metadata; missing or null maps are created
test_pod if {
	pod := json.remove(fx.workload("Pod", fx.pod_spec([fx.container("a", "1", "1Gi")])), ["metadata/labels"])
	bare := {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": []}}
	_patches(bare) == [] with input.request.namespace as fx.namespace
	null_labels := object.union(pod, {"metadata": {"labels": null}})
	patches := mutation.patches with input as fx.review_with(null_labels, {"policies": [fx.policy("p", {"targetWorkloadSelector": {}, "optimizationRules": {"idleShutdownThresholdMinutes": 45}})]})
	patches == [
		{"op": "add", "path": "/metadata/annotations", "value": {"finops.apexlogic.com/idle-shutdown-after": "45m"}},
		{"op": "add", "path": "/metadata/labels", "value": {"finops.apexlogic.com/policy": "p"}},
	]
}

# METADATA
# title: a missing metadata map is added before the maps inside it
test_missing_parent if {
	obj := json.remove(fx.compliant, ["spec/template/metadata"])
	everything := fx.policy("all", {"targetWorkloadSelector": {}, "optimizationRules": {"idleShutdownThresholdMinutes": 5}})
	patches := mutation.patches with input as fx.review_with(obj, {"policies": [everything]})
	patches == [
		{"op": "add", "path": "/metadata/labels", "value": {"finops.apexlogic.com/policy": "all"}},
		{"op": "add", "path": "/spec/template/metadata", "value": {}},
		{"op": "add", "path": "/spec/template/metadata/annotations", "value": {"finops.apexlogic.com/idle-shutdown-after": "5m"}},
	]
	json.patch(obj, patches).spec.template.metadata.annotations == {"finops.apexlogic.com/idle-shutdown-after": "5m"}
}

# METADATA
# title: with several policies the first by name labels and the smallest threshold annotates
test_several_policies if {
	a := fx.policy("a-policy", fx.selector_spec({"optimizationRules": {"idleShutdownThresholdMinutes": 60}}))
	z := fx.policy("z-policy", fx.selector_spec({"optimizationRules": {"idleShutdownThresholdMinutes": 7.5}}))
	patches := mutation.patches with input as fx.review_with(fx.compliant, {"policies": [z, a]})
	patches[0].value == {"finops.apexlogic.com/policy": "a-policy"}
	patches[1].value == {"finops.apexlogic.com/idle-shutdown-after": "7.5m"}
}

# METADATA
# title: no threshold means no annotation, no policy no patch, and HPAs are never patched
test_nothing_to_add if {
	plain := fx.policy("plain", fx.selector_spec({}))
	mutation.patches == [_label_for("plain")] with input as fx.review_with(fx.compliant, {"policies": [plain]})
	mutation.patches == [] with input as fx.review(fx.compliant)
	hpa := {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h", "namespace": fx.namespace}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "inference"}}}
	mutation.patches == [] with input as fx.review_with(hpa, {"policies": [fx.seed_policy], "workloads": [fx.compliant]})
}

# METADATA
# title: _label_for
# description: 'The operation adding the labels map with policy `name`.'
_label_for(name) := {"op": "add", "path": "/metadata/labels", "value": {"finops.apexlogic.com/policy": name}}

# METADATA
# title: objects with a controller owner are never patched (their owner is)
test_controlled_not_patched if {
	owner := {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference", "controller": true}
	replica_set := object.union(fx.compliant, {"kind": "ReplicaSet", "metadata": {"ownerReferences": [owner]}})
	_patches(replica_set) == []
	count(_patches(object.union(fx.compliant, {"kind": "ReplicaSet"}))) == 2
}
