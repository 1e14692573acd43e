# METADATA
# title: Tests of exact decimals
package edgepolicy.lib.decimal_test

import data.edgepolicy.lib.decimal

# METADATA
# title: JSON numbers are read from their literal text, in any notation
test_from_number if {
	decimal.from_number(0.9) == {"m": 9, "e": -1}
	decimal.from_number(3.30) == {"m": 33, "e": -1}
	decimal.from_number(1e-3) == {"m": 1, "e": -3}
	decimal.from_number(1.0E+2) == {"m": 100, "e": 0}
	decimal.from_number(3.0) == {"m": 3, "e": 0}
	decimal.from_number(2.9999999999999999999) == {"m": 29999999999999999999, "e": -19}
	decimal.from_number(72) == {"m": 72, "e": 0}
	decimal.from_number(0) == decimal.zero
	not decimal.from_number(-1)
	not decimal.from_number("1")
}

# METADATA
# title: decimal strings parse; other strings do not
test_parse if {
	decimal.parse("12.5", "floor") == {"m": 125, "e": -1}
	decimal.parse(".5", "floor") == {"m": 5, "e": -1}
	decimal.parse("5.", "floor") == {"m": 5, "e": 0}
	decimal.parse("+10", "floor") == {"m": 1, "e": 1}
	decimal.parse("1e024", "floor") == {"m": 1, "e": 24}
	decimal.parse("180e-1", "floor") == {"m": 18, "e": 0}
	decimal.parse("0.000", "floor") == decimal.zero
	every s in ["", ".", "e3", "1e", "-1", "1.2.3", "1k", " 1"] {
		not decimal.parse(s, "floor")
	}
}

# METADATA
# title: the float pitfalls of the issue compare exactly
test_greater_is_exact if {
	not decimal.greater(decimal.scale(decimal.from_number(0.1), 9), decimal.from_number(0.9))
	not decimal.greater(decimal.scale(decimal.parse("0.3", "floor"), 3), decimal.from_number(0.9))
	decimal.greater(decimal.scale(decimal.parse("0.300000001", "floor"), 3), decimal.from_number(0.9))
	not decimal.greater(decimal.from_number(0.9), decimal.from_number(0.90))
	decimal.greater(decimal.from_number(1), decimal.zero)
	not decimal.greater(decimal.zero, decimal.zero)
	not decimal.greater(decimal.zero, decimal.from_number(1))
}

# METADATA
# title: exponents far apart are compared by magnitude, without building the powers of ten
test_greater_far_apart if {
	decimal.greater({"m": 1, "e": 100000000}, {"m": 999, "e": 0})
	not decimal.greater({"m": 1, "e": -100000000}, {"m": 1, "e": -99999999})
	decimal.greater({"m": 10, "e": 0}, {"m": 9, "e": 0})
	decimal.greater({"m": 100000000000000000000000000001, "e": -30}, {"m": 1, "e": -1})
}

# METADATA
# title: products are exact
test_times if {
	decimal.times(decimal.parse("1.1", "floor"), decimal.parse("3", "floor")) == {"m": 33, "e": -1}
	decimal.text(decimal.times(decimal.of_nanos(1181116006400000000), decimal.of_integer(3))) == "3543348019.2"
}

# METADATA
# title: integers by rounding up
test_rounding_to_integers if {
	decimal.ceil_integer(decimal.parse("1.0000000001", "floor")) == 2
	decimal.ceil_integer(decimal.parse("0.0000000000001", "floor")) == 1
	decimal.ceil_integer(decimal.parse("3", "floor")) == 3
	decimal.ceil_integer(decimal.parse("3e2", "floor")) == 300
}

# METADATA
# title: text is exact and plain; rounded keeps three decimals half up
test_text_and_rounded if {
	decimal.text(decimal.parse("0.0001", "floor")) == "0.0001"
	decimal.text(decimal.parse("120", "floor")) == "120"
	decimal.text(decimal.parse("1e30", "floor")) == "1000000000000000000000000000000"
	decimal.text({"m": 12, "e": -1}) == "1.2"
	decimal.text({"m": 1200, "e": -2}) == "12"
	decimal.text(decimal.rounded(decimal.parse("4.1666666", "floor"), 3)) == "4.167"
	decimal.text(decimal.rounded(decimal.parse("0.0005", "floor"), 3)) == "0.001"
	decimal.text(decimal.rounded(decimal.parse("0.0004", "floor"), 3)) == "0"
	decimal.text(decimal.rounded(decimal.parse("2.5", "floor"), 3)) == "2.5"
}

# METADATA
# title: powers of ten, also beyond the fast table
test_pow10 if {
	decimal.pow10(0) == 1
	decimal.pow10(3) == 1000
	decimal.pow10(70) == decimal.pow10(35) * decimal.pow10(35)
}

# METADATA
# title: more significant digits than are read exactly round the way asked
test_long_digit_strings if {
	digits := concat("", ["1", concat("", ["0" | some _ in numbers.range(1, 299)]), "5"])
	decimal.of_digits(digits, 0, "floor") == {"m": 1, "e": 300}
	up := decimal.of_digits(digits, 0, "ceil")
	up.e == 1
	decimal.text(up) == concat("", ["1", concat("", ["0" | some _ in numbers.range(1, 298)]), "10"])
}

# METADATA
# title: parse rounds more significant digits than are read exactly the way it is asked
test_parse_modes if {
	digits := concat("", ["1", concat("", ["0" | some _ in numbers.range(1, 299)]), "5"])
	decimal.parse(digits, "floor") == {"m": 1, "e": 300}
	decimal.greater(decimal.parse(digits, "ceil"), decimal.parse(digits, "floor"))
	decimal.parse("12.5", "ceil") == decimal.parse("12.5", "floor")
}
