# METADATA
# title: Tests of quantity parsing
package edgepolicy.lib.quantity_test

import data.edgepolicy.lib.quantity

# METADATA
# title: every suffix and notation parses to its value
test_valid_quantities if {
	cases := {
		"2": 2, "500m": 0.5, "1500m": 1.5, "0.5": 0.5, ".5": 0.5, "5.": 5, "+1k": 1000,
		"100n": 0.0000001, "10u": 0.00001, "1k": 1000, "1M": 1000000, "1G": 1000000000,
		"1T": 1000000000000, "1P": 1000000000000000, "1E": 1000000000000000000,
		"1Ki": 1024, "512Mi": 536870912, "1.5Gi": 1610612736, "32Gi": 34359738368,
		"1Ti": 1099511627776, "1Pi": 1125899906842624, "1Ei": 1152921504606846976,
		"1e9": 1000000000, "1E3": 1000, "2e-3": 0.002, "1e+2": 100, "1e0": 1, "0": 0,
	}
	every q, expected in cases {
		quantity.parse(q) == expected
	}
}

# METADATA
# title: JSON numbers are quantities too
test_numbers if {
	quantity.parse(2) == 2
	quantity.parse(0.25) == 0.25
}

# METADATA
# title: malformed, negative and out-of-range quantities do not parse
test_invalid_quantities if {
	every q in ["abc", "", "1.5.5", "1Gb", "1 Gi", "-1", "-500m", "1e25", "1e-25", "e3", "Gi", "1ki", "1KI", -2, true, null, {"cpu": 1}] {
		not quantity.parse(q)
		not quantity.is_valid(q)
	}
}

# METADATA
# title: is_valid holds for a valid quantity
test_is_valid if quantity.is_valid("250m")

# METADATA
# title: the largest allowed exponent works
test_exponent_bounds if {
	quantity.parse("1e24") == 1000000000000000000000000
	quantity.parse("1e-24") == 0.000000000000000000000001
}
