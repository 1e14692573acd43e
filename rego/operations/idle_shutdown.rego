# METADATA
# title: Idle shutdown
# description: |-
#   Whether a stored Deployment or StatefulSet that has been idle for `input.idle.minutes`
#   (no GPU utilisation and no request activity, measured by `edgepolicy finops idle`) is to be
#   scaled to zero. The input is the audit's (the no-op UPDATE review of the stored object with
#   its policies as context) plus `idle`. The governing policy is the applying FinOpsPolicy with
#   the smallest `optimizationRules.idleShutdownThresholdMinutes` (the first by id on a tie),
#   as the mutation stamps the smallest threshold. The action is the enforcement action of the
#   rule `finops.idle-shutdown` (`deny` scales to zero, `warn` only alerts, `dryrun` only
#   reports); the alert routing is the policy's `spec.alerting.idleShutdown`.
package edgepolicy.operations.idle_shutdown

import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.settings

# METADATA
# title: _kinds
# description: 'The kinds scaled through their scale subresource.'
_kinds := {"Deployment", "StatefulSet"}

# METADATA
# title: _thresholds
# description: '[threshold, policy id] of each valid applying policy with a threshold, sorted.'
_thresholds := sort([[threshold, id] |
	some id in policy.matching
	record := policy.applying[id]
	count(record.errors) == 0
	threshold := record.settings.idleShutdownThresholdMinutes
	is_number(threshold)
])

# METADATA
# title: decision
# description: |-
#   `{"policy", "thresholdMinutes", "idleMinutes", "shutdown", "action", "severity",
#   "recipientGroup"}` for a workload an idle-shutdown threshold governs; undefined otherwise.
#   `shutdown` is true when `input.idle.minutes` is above the threshold.
# entrypoint: true
decision := {
	"policy": id,
	"thresholdMinutes": threshold,
	"idleMinutes": _idle_minutes,
	"shutdown": _idle_minutes > threshold,
	"action": settings.action("finops.idle-shutdown"),
	"severity": _route(id, "severity"),
	"recipientGroup": _route(id, "recipientGroup"),
} if {
	request.kind in _kinds
	not request.is_controlled
	count(_thresholds) > 0
	[threshold, id] := _thresholds[0]
}

# METADATA
# title: _idle_minutes
# description: 'The observed idle minutes, -1 when not given (never above a threshold).'
_idle_minutes := input.idle.minutes if is_number(input.idle.minutes)

else := -1

# METADATA
# title: _route
# description: 'A string field of the policy''s `spec.alerting.idleShutdown`, else "".'
_route(id, field) := value if {
	value := policy.applying[id].object.spec.alerting.idleShutdown[field]
	is_string(value)
} else := ""
