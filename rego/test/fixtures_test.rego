# METADATA
# title: Test fixtures
# description: |
#   Shared builders for the Rego tests: the seed FinOpsPolicy of the issue, workloads of every
#   kind, and AdmissionReview inputs. A test package, so it is never part of a decision.
package edgepolicy.test.fixtures_test

# METADATA
# title: namespace
# description: The namespace of the seed policy and of the fixture workloads.
namespace := "ai-workloads"

# METADATA
# title: policy_id
# description: The id of the seed policy.
policy_id := "ai-workloads/edge-ai-inference-cost-policy"

# METADATA
# title: labels
# description: Pod labels the seed policy selects.
labels := {"app": "ai-inference-service", "env": "production-edge"}

# METADATA
# title: seed_policy
# description: The FinOpsPolicy example of the issue, verbatim.
seed_policy := {
	"apiVersion": "policy.apexlogic.com/v1alpha1",
	"kind": "FinOpsPolicy",
	"metadata": {"name": "edge-ai-inference-cost-policy", "namespace": "ai-workloads"},
	"spec": {
		"targetWorkloadSelector": {"matchLabels": labels},
		"costLimits": {"dailyGPUHours": 18, "maxCPUCores": 8, "maxMemoryGB": 32},
		"optimizationRules": {"idleShutdownThresholdMinutes": 30, "modelQuantizationRequired": true},
		"autoScale": {"minReplicas": 1, "maxReplicas": 3, "cpuUtilizationPercentage": 70},
		"alerting": {
			"thresholdExceeded": {"severity": "CRITICAL", "recipientGroup": "finops-team-edge"},
			"idleShutdown": {"severity": "INFO", "recipientGroup": "mlops-team"},
		},
	},
}

# METADATA
# title: policy
# description: A FinOpsPolicy named `name` in the fixture namespace with `spec`.
policy(name, spec) := {
	"apiVersion": "policy.apexlogic.com/v1alpha1",
	"kind": "FinOpsPolicy",
	"metadata": {"name": name, "namespace": namespace},
	"spec": spec,
}

# METADATA
# title: selector_spec
# description: A policy spec selecting the fixture labels, merged with `extra`.
selector_spec(extra) := object.union({"targetWorkloadSelector": {"matchLabels": labels}}, extra)

# METADATA
# title: container
# description: A container named `name` with cpu and memory limits.
container(name, cpu, memory) := {"name": name, "image": "registry.example/model:1", "resources": {"limits": {"cpu": cpu, "memory": memory}}}

# METADATA
# title: pod_spec
# description: A pod spec with `containers`.
pod_spec(containers) := {"containers": containers}

# METADATA
# title: workload
# description: A workload of `kind` named `inference` whose pods run `spec` (a pod spec) with the fixture labels.
workload("Pod", spec) := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "inference", "namespace": namespace, "labels": labels},
	"spec": spec,
}

workload("CronJob", spec) := {
	"apiVersion": "batch/v1",
	"kind": "CronJob",
	"metadata": {"name": "inference", "namespace": namespace},
	"spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"metadata": {"labels": labels}, "spec": spec}}}},
}

workload(kind, spec) := {
	"apiVersion": _api_versions[kind],
	"kind": kind,
	"metadata": {"name": "inference", "namespace": namespace},
	"spec": {"template": {"metadata": {"labels": labels}, "spec": spec}},
} if {
	not kind in {"Pod", "CronJob"}
}

# METADATA
# title: _api_versions
# description: 'The apiVersion of each templated workload kind.'
_api_versions := {
	"Deployment": "apps/v1",
	"StatefulSet": "apps/v1",
	"ReplicaSet": "apps/v1",
	"DaemonSet": "apps/v1",
	"Job": "batch/v1",
}

# METADATA
# title: deployment
# description: A Deployment with `replicas` whose pods run `containers`.
deployment(replicas, containers) := object.union(workload("Deployment", pod_spec(containers)), {"spec": {"replicas": replicas}})

# METADATA
# title: compliant
# description: A Deployment the seed policy admits on cost (one replica, 2 cores, 8Gi).
compliant := deployment(1, [container("server", "2", "8Gi")])

# METADATA
# title: review
# description: The AdmissionReview input for CREATE of `obj`.
review(obj) := review_op(obj, "CREATE")

# METADATA
# title: review_op
# description: The AdmissionReview input for `operation` on `obj`.
review_op(obj, operation) := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"request": {
		"uid": "0000",
		"kind": {"group": "", "version": "v1", "kind": object.get(obj, "kind", "")},
		"namespace": object.get(obj, ["metadata", "namespace"], namespace),
		"name": object.get(obj, ["metadata", "name"], ""),
		"operation": operation,
		"userInfo": {"username": "tester"},
		"object": obj,
	},
}

# METADATA
# title: review_with
# description: |
#   The CREATE input for `obj` with the given `context`, marked as the validator's output
#   (`policiesValidated`, unless `context` says otherwise): its `policies` are taken as valid.
review_with(obj, context) := object.union(review(obj), {"context": object.union({"policiesValidated": true}, context)})

# METADATA
# title: invalid_record
# description: |
#   The validator's record of invalid `policy` (docs/decision-contract.md): its `errors` and its
#   enforceable part, the policy with `spec` replaced by `enforced_spec`.
invalid_record(policy, errors, enforced_spec) := {
	"kind": policy.kind,
	"namespace": policy.metadata.namespace,
	"name": policy.metadata.name,
	"errors": errors,
	"object": object.union(object.remove(policy, {"spec"}), {"spec": enforced_spec}),
}

# METADATA
# title: seeded
# description: The CREATE input for `obj` with the seed policy in the context.
seeded(obj) := review_with(obj, {"policies": [seed_policy]})

# METADATA
# title: quantized
# description: Context model facts saying container `name` serves a quantized model.
quantized(name) := {name: {"quantized": true}}
