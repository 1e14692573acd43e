# METADATA
# title: Kubernetes resource quantities
# description: |
#   Parses quantities the way Kubernetes does (`500m`, `2`, `512Mi`, `1G`, `1.5Gi`, `1e9`, `1E3`):
#   decimal SI suffixes n u m k M G T P E, binary suffixes Ki Mi Gi Ti Pi Ei and decimal exponents
#   e/E with an integer exponent between -24 and 24. Negative quantities are rejected because a
#   resource limit cannot be negative. Unparseable input leaves `parse` undefined.
package edgepolicy.lib.quantity

# METADATA
# title: _pattern
# description: 'Number, optional suffix; the exponent alternative comes before the bare `E` (exa) suffix.'
_pattern := `^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]{1,2}|n|u|m|k|M|G|T|P|E)?$`

# METADATA
# title: _multipliers
# description: 'The factor of each multiplying suffix.'
_multipliers := {
	"": 1,
	"k": 1000,
	"M": 1000000,
	"G": 1000000000,
	"T": 1000000000000,
	"P": 1000000000000000,
	"E": 1000000000000000000,
	"Ki": 1024,
	"Mi": 1048576,
	"Gi": 1073741824,
	"Ti": 1099511627776,
	"Pi": 1125899906842624,
	"Ei": 1152921504606846976,
}

# METADATA
# title: _divisors
# description: 'Sub-unit suffixes divide instead of multiply: division keeps the result exact.'
_divisors := {"m": 1000, "u": 1000000, "n": 1000000000}

# METADATA
# title: _max_exponent
# description: 'The largest decimal exponent accepted (bounds the work a quantity can cause).'
_max_exponent := 24

# METADATA
# title: parse
# description: |
#   The value of quantity `q` (a string, or a non-negative JSON number) as a number in base units
#   (cores, bytes, devices); undefined when `q` is not a valid non-negative quantity.
parse(q) := q if {
	is_number(q)
	q >= 0
}

parse(q) := value if {
	is_string(q)
	[[_, digits, suffix]] := regex.find_all_string_submatch_n(_pattern, q, 1)
	value := _scale(_to_number(digits), suffix)
}

# METADATA
# title: is_valid
# description: True when `q` parses as a non-negative quantity.
is_valid(q) if parse(q)

# METADATA
# title: _to_number
# description: 'The number written as `digits`; `.5` and `5.` are quantities but not JSON numbers.'
_to_number(digits) := to_number(concat("", ["0", digits])) if {
	startswith(digits, ".")
} else := to_number(concat("", [digits, "0"])) if {
	endswith(digits, ".")
} else := to_number(digits)

# METADATA
# title: _scale
# description: '`n` scaled by `suffix`.'
_scale(n, suffix) := n * _multipliers[suffix] if {
	_multipliers[suffix]
} else := n / _divisors[suffix] if {
	_divisors[suffix]
} else := value if {
	exponent := to_number(trim_left(substring(suffix, 1, -1), "+"))
	abs(exponent) <= _max_exponent
	value := _apply_exponent(n, exponent)
}

# METADATA
# title: _apply_exponent
# description: '`n` x 10^`exponent`.'
_apply_exponent(n, exponent) := n * _power_of_ten(exponent) if exponent >= 0

_apply_exponent(n, exponent) := n / _power_of_ten(abs(exponent)) if exponent < 0

# METADATA
# title: _power_of_ten
# description: '10^`exponent` for a non-negative whole `exponent`.'
_power_of_ten(0) := 1

_power_of_ten(exponent) := product([10 | some _ in numbers.range(1, exponent)]) if exponent > 0
