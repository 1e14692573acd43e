# METADATA
# title: Settings from data, with defaults
# description: |
#   `data.edgepolicy.settings` may be absent; every setting has a default here. An unknown
#   enforcement action falls back to `deny` (fail closed).
package edgepolicy.lib.settings

# METADATA
# title: _actions
# description: 'The enforcement actions.'
_actions := {"deny", "warn", "dryrun"}

# METADATA
# title: _default_gpu_resource_names
# description: 'The GPU resource names used when data sets none.'
_default_gpu_resource_names := ["nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915"]

# METADATA
# title: action
# description: The enforcement action of `rule`, from `data.edgepolicy.settings.enforcementActions`.
action(rule) := configured if {
	configured := data.edgepolicy.settings.enforcementActions[rule]
	configured in _actions
} else := "deny"

# METADATA
# title: gpu_resource_names
# description: The extended resources counted as GPUs, from `data.edgepolicy.settings.gpuResourceNames`.
gpu_resource_names := {name | some name in data.edgepolicy.settings.gpuResourceNames; is_string(name)} if {
	is_array(data.edgepolicy.settings.gpuResourceNames)
} else := {name | some name in _default_gpu_resource_names}

# METADATA
# title: model_verify_image
# description: The image of the init container that verifies models at pod start, from `data.edgepolicy.settings.modelVerifyImage`.
model_verify_image := data.edgepolicy.settings.modelVerifyImage if {
	is_string(data.edgepolicy.settings.modelVerifyImage)
	data.edgepolicy.settings.modelVerifyImage != ""
} else := "ghcr.io/apexlogic/edgepolicy:0.1.0"

# METADATA
# title: model_verify_resources
# description: |
#   The limits (and equal requests) of that init container, from
#   `data.edgepolicy.settings.modelVerifyResources` (`{"cpu": ..., "memory": ...}`); limits keep
#   `finops.limits-missing` satisfied and count in the pod's cost like any init container.
model_verify_resources := data.edgepolicy.settings.modelVerifyResources if {
	is_object(data.edgepolicy.settings.modelVerifyResources)
	is_string(data.edgepolicy.settings.modelVerifyResources.cpu)
	is_string(data.edgepolicy.settings.modelVerifyResources.memory)
} else := {"cpu": "500m", "memory": "256Mi"}
