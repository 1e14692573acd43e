# METADATA
# title: Tests of number formatting
package edgepolicy.lib.format_test

import data.edgepolicy.lib.format

# METADATA
# title: numbers keep at most three decimals
test_number if {
	format.number(12) == "12"
	format.number(0.5) == "0.5"
	format.number(12.5 / 3) == "4.167"
}

# METADATA
# title: bytes render as GiB
test_gibibytes if {
	format.decimal_gibibytes({"m": 536870912, "e": 0}) == "0.5Gi"
}

# METADATA
# title: a non-string annotation value gets a hint
test_string_hint if {
	format.string_hint("18") == ""
	format.string_hint(18) == " (annotation values are strings: quote it)"
}

# METADATA
# title: counts take the singular for exactly 1
test_counted if {
	format.counted(1, "pod", "pods") == "1 pod"
	format.counted(3, "pod", "pods") == "3 pods"
	format.counted(0.5, "core", "cores") == "0.5 cores"
	format.counted(0, "GPU", "GPUs") == "0 GPUs"
}

# METADATA
# title: a value above a limit keeps full precision when rounding would hide the overshoot
test_above if {
	format.above(12, 8) == "12"
	format.above(8.0004, 8) == "8.0004"
	format.above(30.0000001, 30) == "30.0000001"
	format.counted_above(1.0001, 1, "core", "cores") == "1.0001 cores"
	format.counted_above(1, 0.5, "core", "cores") == "1 core"
}

# METADATA
# title: a count field with a default names where its number comes from
test_defaulted if {
	format.defaulted("spec.replicas", 2, 1) == "spec.replicas 2"
	format.defaulted("spec.replicas", null, 1) == "spec.replicas 1 by default"
	format.defaulted("spec.replicas", "2", 1) == "spec.replicas \"2\", not a number, counted as 1"
}

# METADATA
# title: exact keeps every digit that three decimals would lose
test_exact if {
	format.exact(12) == "12"
	format.exact(0.25) == "0.25"
	format.exact(1.0001) == "1.0001"
}

# METADATA
# title: exact decimals render from their digits
test_decimals if {
	format.decimal_number({"m": 41666666, "e": -7}) == "4.167"
	format.decimal_above({"m": 80004, "e": -4}, {"m": 8, "e": 0}) == "8.0004"
	format.decimal_above({"m": 12, "e": 0}, {"m": 8, "e": 0}) == "12"
	format.decimal_counted({"m": 1, "e": 0}, "GPU", "GPUs") == "1 GPU"
	format.decimal_counted({"m": 3, "e": -1}, "core", "cores") == "0.3 cores"
	format.decimal_counted_above({"m": 10001, "e": -4}, {"m": 1, "e": 0}, "core", "cores") == "1.0001 cores"
	format.decimal_gibibytes({"m": 3543348019200000000, "e": -9}) == "3.3Gi"
	format.decimal_gibibytes({"m": 38654705664, "e": 0}) == "36Gi"
}
