# METADATA
# title: Tests of HPA helpers
package edgepolicy.lib.autoscaling_test

import data.edgepolicy.lib.autoscaling
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _hpa
# description: 'An autoscaling/v2 HPA scaling Deployment `inference`, with `spec` merged in.'
_hpa(spec) := {
	"apiVersion": "autoscaling/v2",
	"kind": "HorizontalPodAutoscaler",
	"metadata": {"name": "scaler", "namespace": fx.namespace},
	"spec": object.union({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference"}}, spec),
}

# METADATA
# title: HPAs are recognised by kind and API group
test_is_hpa if {
	autoscaling.is_hpa(_hpa({}))
	not autoscaling.is_hpa(object.union(_hpa({}), {"apiVersion": "example.com/v1"}))
}

# METADATA
# title: targets resolve by kind, name and namespace from the context
test_targets if {
	elsewhere := object.union(fx.compliant, {"metadata": {"namespace": "elsewhere"}})
	no_namespace := json.remove(fx.compliant, ["metadata/namespace"])
	statefulset := object.union(fx.workload("StatefulSet", {}), {"metadata": {"name": "inference"}})
	targets := autoscaling.targets(_hpa({}), fx.namespace) with input.context.workloads as [fx.compliant, elsewhere, no_namespace, statefulset, "junk"]
	targets == [fx.compliant, no_namespace]
}

# METADATA
# title: the HPAs scaling a workload are found in the context
test_targeting if {
	other := object.union(_hpa({}), {"spec": {"scaleTargetRef": {"name": "other"}}})
	autoscaling.targeting("Deployment", "inference", fx.namespace) == [_hpa({})] with input.context.workloads as [_hpa({}), other, fx.compliant]
}

# METADATA
# title: minReplicas defaults to 1, maxReplicas has no default
test_replicas if {
	autoscaling.min_replicas(_hpa({})) == 1
	autoscaling.min_replicas(_hpa({"minReplicas": 2})) == 2
	autoscaling.max_replicas(_hpa({"maxReplicas": 5})) == 5
	not autoscaling.max_replicas(_hpa({}))
}

# METADATA
# title: CPU utilization targets from v2 Resource and ContainerResource metrics and from v1
test_cpu_targets if {
	metrics := [
		{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
		{"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 50}}},
		{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "500m"}}},
		{"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "server", "target": {"type": "Utilization", "averageUtilization": 80}}},
	]
	autoscaling.cpu_utilization_targets(_hpa({"metrics": metrics})) == [70, 80]
	autoscaling.cpu_utilization_targets(_hpa({})) == []
	autoscaling.cpu_utilization_targets({"apiVersion": "autoscaling/v1", "spec": {"targetCPUUtilizationPercentage": 60}}) == [60]
}
