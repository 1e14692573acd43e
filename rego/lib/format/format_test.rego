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
	format.gibibytes(38654705664) == "36Gi"
	format.gibibytes(536870912) == "0.5Gi"
}

# METADATA
# title: a non-string annotation value gets a hint
test_string_hint if {
	format.string_hint("18") == ""
	format.string_hint(18) == " (annotation values are strings: quote it)"
}
