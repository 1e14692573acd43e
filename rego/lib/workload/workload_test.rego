# METADATA
# title: Tests of workload shapes
package edgepolicy.lib.workload_test

import data.edgepolicy.lib.workload
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _spec
# description: 'A pod spec with one limited container.'
_spec := fx.pod_spec([fx.container("server", "1", "1Gi")])

# METADATA
# title: every workload kind exposes its pod labels
test_pod_labels_per_kind if {
	every kind in workload.kinds {
		workload.pod_labels(fx.workload(kind, _spec)) == fx.labels
	}
}

# METADATA
# title: the pod template of each kind lives where Kubernetes keeps it
test_template_paths if {
	workload.template_path(fx.workload("Pod", _spec)) == []
	workload.template_path(fx.workload("CronJob", _spec)) == ["spec", "jobTemplate", "spec", "template"]
	workload.template_path(fx.workload("Job", _spec)) == ["spec", "template"]
	workload.field(workload.pod_metadata_path(fx.workload("CronJob", _spec))) == "spec.jobTemplate.spec.template.metadata"
}

# METADATA
# title: only the seven workload kinds are workloads
test_is_workload if {
	workload.is_workload(fx.workload("DaemonSet", _spec))
	not workload.is_workload({"kind": "Service"})
	not workload.is_workload({})
}

# METADATA
# title: missing or malformed label and annotation maps read as empty
test_missing_maps if {
	workload.pod_labels({"kind": "Pod", "metadata": {"labels": "app=x"}}) == {}
	workload.pod_annotations({"kind": "Deployment"}) == {}
	workload.pod_annotations(object.union(fx.workload("Pod", _spec), {"metadata": {"annotations": {"a": "b"}}})) == {"a": "b"}
}

# METADATA
# title: containers and init containers are listed with their path, limits and sidecar flag
test_containers if {
	spec := {
		"containers": [fx.container("server", "1", "1Gi"), {"image": "x"}],
		"initContainers": [
			{"name": "proxy", "restartPolicy": "Always", "resources": {"limits": {"cpu": "100m"}}},
			{"name": "fetch", "resources": "none"},
		],
	}
	records := workload.containers(fx.workload("Deployment", spec))
	records[0] == {"name": "server", "field": "spec.template.spec.containers[0]", "limits": {"cpu": "1", "memory": "1Gi"}, "quantities": {"cpu": 1000000000, "memory": 1073741824000000000}, "is_init": false, "is_sidecar": false, "index": 0}
	records[1].name == "#1"
	records[1].limits == {}
	records[2] == {"name": "proxy", "field": "spec.template.spec.initContainers[0]", "limits": {"cpu": "100m"}, "quantities": {"cpu": 100000000}, "is_init": true, "is_sidecar": true, "index": 0}
	records[3].is_sidecar == false
	records[3].limits == {}
}

# METADATA
# title: pod-level limits and overhead are read with their quantities, also from a pod template
test_pod_resources if {
	spec := {"containers": [], "resources": {"limits": {"cpu": "2", "memory": "oops"}}, "overhead": {"cpu": "250m"}}
	workload.pod_resources(fx.workload("Deployment", spec)) == {
		"field": "spec.template.spec",
		"limits": {"cpu": "2", "memory": "oops"},
		"limit_quantities": {"cpu": 2000000000},
		"overhead": {"cpu": "250m"},
		"overhead_quantities": {"cpu": 250000000},
	}
	workload.pod_resources(fx.workload("Pod", {"containers": []})) == {
		"field": "spec",
		"limits": {},
		"limit_quantities": {},
		"overhead": {},
		"overhead_quantities": {},
	}
}

# METADATA
# title: a Pod's containers are under spec
test_pod_container_field if {
	workload.containers(fx.workload("Pod", _spec))[0].field == "spec.containers[0]"
	workload.containers({"kind": "Pod", "spec": {"containers": "x"}}) == []
}

# METADATA
# title: max scale per kind
test_max_scale if {
	workload.max_scale(fx.workload("Pod", _spec), 3) == 1
	workload.max_scale(fx.workload("Job", _spec), 3) == 1
	workload.max_scale(object.union(fx.workload("Job", _spec), {"spec": {"parallelism": 4}}), 3) == 4
	workload.max_scale(object.union(fx.workload("CronJob", _spec), {"spec": {"jobTemplate": {"spec": {"parallelism": 2}}}}), 9) == 2
	workload.max_scale(fx.workload("CronJob", _spec), 9) == 1
	workload.max_scale(fx.deployment(5, []), 3) == 5
	workload.max_scale(fx.deployment(2, []), 3) == 3
	workload.max_scale(fx.workload("StatefulSet", _spec), 0) == 1
	workload.max_scale(fx.workload("ReplicaSet", _spec), 4) == 4
	workload.max_scale(fx.workload("DaemonSet", _spec), 3) == 3
	workload.max_scale(fx.workload("DaemonSet", _spec), 0) == 1
}

# METADATA
# title: replicas default to 1 when absent or not a number
test_replicas if {
	workload.replicas(fx.deployment(4, [])) == 4
	workload.replicas(fx.deployment("4", [])) == 1
	workload.replicas(fx.workload("Deployment", _spec)) == 1
}
