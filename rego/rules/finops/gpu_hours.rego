# finops.gpu-hours: pods x per-pod GPUs x daily active hours within the policy's dailyGPUHours
# (part of package edgepolicy.rules.finops, annotated in finops.rego). dailyGPUHours budgets all
# pods of the workload per day (3 pods x 1 GPU x 24 h = 72). Daily active hours come from the
# pod-template annotation finops.apexlogic.com/daily-active-hours (a number in (0, 24], default
# 24). The product and the comparison are exact decimals.
package edgepolicy.rules.finops

import data.edgepolicy.lib.decimal
import data.edgepolicy.lib.format
import data.edgepolicy.lib.request
import data.edgepolicy.lib.resources
import data.edgepolicy.lib.settings
import data.edgepolicy.lib.workload

# METADATA
# title: _hours_annotation
# description: 'The daily-active-hours annotation.'
_hours_annotation := "finops.apexlogic.com/daily-active-hours"

# METADATA
# title: _hours_pattern
# description: |
#   A plain decimal number, as written in YAML or JSON and more (`8`, `12.5`, `.5`, `+10`, `1e1`,
#   `1e01`), exponents up to ±24 (any number of leading zeros), read exactly by `decimal.parse`.
_hours_pattern := `^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?0*([0-9]|1[0-9]|2[0-4]))?$`

# METADATA
# title: _hours_cap
# description: 'The most daily active hours.'
_hours_cap := {"m": 24, "e": 0}

# METADATA
# title: finops.gpu-hours
# description: Pods x per-pod GPUs x daily active hours exceeds `costLimits.dailyGPUHours`.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#finops.gpu-hours
#     description: finops.gpu-hours in docs/policies.md
# custom:
#   rule: finops.gpu-hours
#   summary: "Workload GPU-hours a day above the FinOpsPolicy's dailyGPUHours"
#   fix: "Lower the GPU limits, the number of pods, or the pod-template annotation `finops.apexlogic.com/daily-active-hours` (a number of hours in (0, 24]) so that pods x GPUs x hours is at most `costLimits.dailyGPUHours`; GPU limits are whole numbers."
findings contains finding if {
	some record in _workload_policies
	limit := decimal.from_number(record.settings.dailyGPUHours)
	hours := _daily_hours
	gpus := decimal.of_nanos(resources.pod_gpus(request.containers, _pod_level, settings.gpu_resource_names))
	total := decimal.times(decimal.times(_pod_count[record.id], gpus), hours)
	decimal.greater(total, limit)
	finding := {
		"rule": "finops.gpu-hours",
		"policy": record.id,
		"message": sprintf(
			"finops.gpu-hours: %s: %s x %s per pod x %s a day (%s) = %s a day exceeds dailyGPUHours %s of FinOpsPolicy %s; lower the GPU limits, the number of pods or the daily active hours",
			[
				request.description, _pods_text(record), format.decimal_counted(gpus, "GPU", "GPUs"),
				format.decimal_counted(hours, "active hour", "active hours"), _hours_source,
				format.decimal_counted_above(total, limit, "GPU-hour", "GPU-hours"), decimal.text(limit), record.id,
			],
		),
	}
}

# METADATA
# title: malformed GPU quantities and daily-active-hours annotation
# description: |
#   A GPU limit that is not a quantity or not a whole number (Kubernetes refuses `0.5` of an
#   extended resource), or a daily-active-hours annotation that is not a number in (0, 24], is a
#   finops.gpu-hours violation when the policy sets dailyGPUHours.
findings contains finding if {
	some record in _workload_policies
	record.settings.dailyGPUHours
	some problem in resources.malformed_limits(request.containers, _pod_level, settings.gpu_resource_names)
	finding := _malformed_quantity_finding("finops.gpu-hours", record, problem)
}

findings contains finding if {
	some record in _workload_policies
	record.settings.dailyGPUHours
	value := workload.pod_annotations(request.object)[_hours_annotation]
	not _daily_hours
	finding := {
		"rule": "finops.gpu-hours",
		"policy": record.id,
		"message": sprintf(
			"finops.gpu-hours: %s: annotation %s on %s.annotations is %s, not a number of hours in (0, 24]%s, so FinOpsPolicy %s cannot be checked; set it to a number such as \"8\" or \"12.5\"",
			[
				request.description, _hours_annotation, workload.field(workload.pod_metadata_path(request.object)),
				json.marshal(value), format.string_hint(value), record.id,
			],
		),
	}
}

# METADATA
# title: _hours_source
# description: 'Where the daily active hours come from, for messages.'
_hours_source := sprintf("annotation %s", [_hours_annotation]) if {
	_hours_annotation in object.keys(workload.pod_annotations(request.object))
} else := sprintf("annotation %s unset, default 24", [_hours_annotation])

# METADATA
# title: _daily_hours
# description: 'The daily active hours of the admitted workload''s pods as an exact decimal; undefined when the annotation is malformed.'
_daily_hours := hours if {
	value := workload.pod_annotations(request.object)[_hours_annotation]
	is_string(value)
	regex.match(_hours_pattern, value)
	hours := decimal.parse(value, "ceil")
	decimal.greater(hours, decimal.zero)
	not decimal.greater(hours, _hours_cap)
} else := _hours_cap if {
	not _hours_annotation in object.keys(workload.pod_annotations(request.object))
}
