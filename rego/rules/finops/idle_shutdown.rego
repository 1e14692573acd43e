# finops.idle-shutdown: the annotation finops.apexlogic.com/idle-shutdown-after (a Go duration
# such as 45m or 1h30m) is at most the policy's idleShutdownThresholdMinutes (part of package
# edgepolicy.rules.finops, annotated in finops.rego). It is read from the workload's
# metadata.annotations and from its pod template's annotations; wherever it is set, it must hold.
package edgepolicy.rules.finops

import data.edgepolicy.lib.decimal
import data.edgepolicy.lib.format
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: _idle_annotation
# description: 'The idle-shutdown annotation.'
_idle_annotation := "finops.apexlogic.com/idle-shutdown-after"

# METADATA
# title: _go_duration
# description: 'A non-negative Go duration such as `45m`, `1h30m`, `0.5h` or `+5m` (time.ParseDuration takes a leading sign).'
_go_duration := `^\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`

# METADATA
# title: _nanoseconds_per_minute
# description: 'Nanoseconds in a minute.'
_nanoseconds_per_minute := 60000000000

# METADATA
# title: finops.idle-shutdown
# description: The idle-shutdown annotation exceeds `optimizationRules.idleShutdownThresholdMinutes`.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#finops.idle-shutdown
#     description: finops.idle-shutdown in docs/policies.md
# custom:
#   rule: finops.idle-shutdown
#   summary: "Idle-shutdown annotation longer than the FinOpsPolicy allows"
#   fix: "Set the annotation `finops.apexlogic.com/idle-shutdown-after` to a Go duration (`30m`, `1h`) of at most `optimizationRules.idleShutdownThresholdMinutes` minutes, or remove it and let the mutating webhook set it."
findings contains finding if {
	some record in _workload_policies
	threshold := record.settings.idleShutdownThresholdMinutes
	some location, value in _idle_annotations
	nanoseconds := _nanoseconds(value)
	decimal.greater(
		decimal.of_integer(nanoseconds),
		decimal.scale(decimal.from_number(threshold), _nanoseconds_per_minute),
	)
	minutes := nanoseconds / _nanoseconds_per_minute
	finding := {
		"rule": "finops.idle-shutdown",
		"policy": record.id,
		"message": sprintf(
			"finops.idle-shutdown: %s: annotation %s on %s is %s (%s), above idleShutdownThresholdMinutes %s of FinOpsPolicy %s; set it to %sm or less",
			[
				request.description, _idle_annotation, location, value,
				format.counted_above(minutes, threshold, "minute", "minutes"),
				format.exact(threshold), record.id, format.exact(threshold),
			],
		),
	}
}

# METADATA
# title: malformed idle-shutdown annotation
# description: An idle-shutdown annotation that is not a positive Go duration is a violation.
findings contains finding if {
	some record in _workload_policies
	record.settings.idleShutdownThresholdMinutes
	some location, value in _idle_annotations
	not _nanoseconds(value)
	finding := {
		"rule": "finops.idle-shutdown",
		"policy": record.id,
		"message": sprintf(
			"finops.idle-shutdown: %s: annotation %s on %s is %s, not a positive Go duration such as 45m or 1h30m%s, so FinOpsPolicy %s cannot be checked; fix the value",
			[request.description, _idle_annotation, location, json.marshal(value), format.string_hint(value), record.id],
		),
	}
}

# METADATA
# title: _idle_annotations
# description: 'The idle-shutdown annotation values of the admitted workload by where they are set.'
_idle_annotations[location] := value if {
	some path in {["metadata", "annotations"], array.concat(workload.pod_metadata_path(request.object), ["annotations"])}
	value := object.get(request.object, array.concat(path, [_idle_annotation]), null)
	value != null
	location := workload.field(path)
}

# METADATA
# title: _nanoseconds
# description: 'The nanoseconds (an exact integer) of Go duration `value`; undefined unless it is a positive duration.'
_nanoseconds(value) := nanoseconds if {
	is_string(value)
	regex.match(_go_duration, value)
	nanoseconds := time.parse_duration_ns(value)
	nanoseconds > 0
}
