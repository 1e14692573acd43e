# finops.hpa: a HorizontalPodAutoscaler scaling a matched workload stays within the policy's
# autoScale bounds (part of package edgepolicy.rules.finops, annotated in finops.rego). It is
# judged when the HPA is admitted (its target resolved from input.context.workloads) and when the
# workload it scales is admitted with the HPA in input.context.workloads (the HPA may have been
# created first, when its target was not known yet).
package edgepolicy.rules.finops

import data.edgepolicy.lib.autoscaling
import data.edgepolicy.lib.format
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request

# METADATA
# title: finops.hpa (admitted HPA)
# description: |
#   The admitted HPA has minReplicas below the policy's, maxReplicas above it, or a CPU
#   averageUtilization target missing or below `autoScale.cpuUtilizationPercentage`.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#finops.hpa
#     description: finops.hpa in docs/policies.md
# custom:
#   rule: finops.hpa
#   description: "A HorizontalPodAutoscaler scaling a selected workload has minReplicas below the policy's autoScale.minReplicas, maxReplicas above autoScale.maxReplicas (or none), or, when the policy sets cpuUtilizationPercentage, no CPU averageUtilization target or one below it. Judged when the HPA is admitted and when the workload it scales is."
#   summary: "HorizontalPodAutoscaler outside the FinOpsPolicy's autoScale bounds"
#   fix: "Keep the HPA's `minReplicas` at least and `maxReplicas` at most the policy's `autoScale` bounds, and give it a CPU `averageUtilization` target of at least `autoScale.cpuUtilizationPercentage` when the policy sets one."
findings contains finding if {
	autoscaling.is_hpa(request.object)
	some record in policy.applying
	some problem in _hpa_problems(request.object, record.settings)
	finding := {
		"rule": "finops.hpa",
		"policy": record.id,
		"message": sprintf(
			"finops.hpa: %s (scaling %s %s): %s of FinOpsPolicy %s; %s",
			[
				request.description, request.object.spec.scaleTargetRef.kind,
				request.object.spec.scaleTargetRef.name, problem.text, record.id, problem.fix,
			],
		),
	}
}

# METADATA
# title: finops.hpa (admitted workload)
# description: An HPA in the context that scales the admitted workload breaks the policy's bounds.
findings contains finding if {
	some record in _workload_policies
	some hpa in autoscaling.targeting(request.kind, request.name, request.namespace)
	some problem in _hpa_problems(hpa, record.settings)
	finding := {
		"rule": "finops.hpa",
		"policy": record.id,
		"message": sprintf(
			"finops.hpa: %s is scaled by HorizontalPodAutoscaler %s/%s whose %s of FinOpsPolicy %s; %s on the HPA",
			[request.description, request.namespace, hpa.metadata.name, problem.text, record.id, problem.fix],
		),
	}
}

# METADATA
# title: _hpa_problems
# description: 'What `hpa` breaks of the autoScale bounds of `policy_settings`, each with its fix.'
_hpa_problems(hpa, policy_settings) := array.concat(
	array.concat(_min_problems(hpa, policy_settings), _max_problems(hpa, policy_settings)),
	_cpu_problems(hpa, policy_settings),
)

# METADATA
# title: _min_problems
# description: 'A problem when minReplicas is below the policy''s.'
_min_problems(hpa, policy_settings) := [problem |
	limit := policy_settings.minReplicas
	actual := autoscaling.min_replicas(hpa)
	actual < limit
	problem := {
		"text": sprintf("%s is below autoScale.minReplicas %v", [format.defaulted("minReplicas", object.get(hpa, ["spec", "minReplicas"], null), 1), limit]),
		"fix": sprintf("set minReplicas to at least %v", [limit]),
	}
]

# METADATA
# title: _max_problems
# description: 'A problem when maxReplicas is above the policy''s or missing.'
_max_problems(hpa, policy_settings) := [problem |
	limit := policy_settings.maxReplicas
	not _is_max_within(hpa, limit)
	problem := {
		"text": _max_text(object.get(hpa, ["spec", "maxReplicas"], null), limit),
		"fix": sprintf("set maxReplicas to at most %v", [limit]),
	}
]

# METADATA
# title: _cpu_problems
# description: 'Problems when the CPU utilization target is missing or below the policy''s.'
_cpu_problems(hpa, policy_settings) := array.concat(
	[problem |
		limit := policy_settings.cpuUtilizationPercentage
		count(autoscaling.cpu_utilization_targets(hpa)) == 0
		problem := {
			"text": sprintf("CPU averageUtilization target is missing, required by autoScale.cpuUtilizationPercentage %v", [limit]),
			"fix": sprintf("add a Resource metric on cpu with target type Utilization and averageUtilization of at least %v", [limit]),
		}
	],
	[problem |
		limit := policy_settings.cpuUtilizationPercentage
		some target in autoscaling.cpu_utilization_targets(hpa)
		not _is_at_least(target, limit)
		problem := {
			"text": _cpu_text(target, limit),
			"fix": sprintf("raise averageUtilization to at least %v", [limit]),
		}
	],
)

# METADATA
# title: _max_text
# description: 'What is wrong with HPA maxReplicas `value` (not at most `limit`), for messages.'
_max_text(value, limit) := sprintf("maxReplicas %v exceeds autoScale.maxReplicas %v", [value, limit]) if {
	is_number(value)
} else := sprintf("maxReplicas is missing, required to be at most autoScale.maxReplicas %v", [limit]) if {
	value == null
} else := sprintf("maxReplicas %s is not a number, required to be at most autoScale.maxReplicas %v", [json.marshal(value), limit])

# METADATA
# title: _cpu_text
# description: 'What is wrong with CPU averageUtilization target `value` (not at least `limit`), for messages.'
_cpu_text(value, limit) := sprintf("CPU averageUtilization target %v is below autoScale.cpuUtilizationPercentage %v", [value, limit]) if {
	is_number(value)
} else := sprintf("CPU averageUtilization target %s is not a number, required to be at least autoScale.cpuUtilizationPercentage %v", [json.marshal(value), limit])

# METADATA
# title: _is_max_within
# description: 'True when the maxReplicas of `hpa` is at most `limit`.'
_is_max_within(hpa, limit) if autoscaling.max_replicas(hpa) <= limit

# METADATA
# title: _is_at_least
# description: 'True when `value` is a number of at least `limit`.'
_is_at_least(value, limit) if {
	is_number(value)
	value >= limit
}
