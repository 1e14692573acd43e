# METADATA
# title: Tests of settings defaults
package edgepolicy.lib.settings_test

import data.edgepolicy.lib.settings

# METADATA
# title: rules deny unless data says otherwise; unknown actions deny
test_actions if {
	settings.action("finops.cpu") == "deny"
	settings.action("finops.cpu") == "warn" with data.edgepolicy.settings.enforcementActions as {"finops.cpu": "warn"}
	settings.action("finops.cpu") == "dryrun" with data.edgepolicy.settings.enforcementActions as {"finops.cpu": "dryrun"}
	settings.action("finops.cpu") == "deny" with data.edgepolicy.settings.enforcementActions as {"finops.cpu": "ignore"}
	settings.action("finops.memory") == "deny" with data.edgepolicy.settings.enforcementActions as {"finops.cpu": "warn"}
}

# METADATA
# title: GPU resource names default to the three vendors and can be replaced
test_gpu_resource_names if {
	settings.gpu_resource_names == {"nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915"}
	settings.gpu_resource_names == {"example.com/npu"} with data.edgepolicy.settings.gpuResourceNames as ["example.com/npu", 3]
}
