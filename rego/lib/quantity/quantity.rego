# METADATA
# title: Kubernetes resource quantities
# description: |
#   Reads quantities as the API server does (k8s.io/apimachinery resource.ParseQuantity behind
#   Quantity.UnmarshalJSON): `500m`, `2`, `512Mi`, `1G`, `1.5Gi`, `1e9`, `1E3`, `.5`, `5.`;
#   decimal SI suffixes n u m k M G T P E, binary suffixes Ki Mi Gi Ti Pi Ei and decimal exponents
#   e/E (any number of digits, value between -24 and 24); spaces around the value are ignored; a
#   JSON number is read from its literal text. The value is an exact integer count of nano-units
#   (10^-9 of the base unit: cores, bytes, devices), Kubernetes' own finest scale: finer values
#   round up to the next nano-unit and binary-suffixed values are capped at 2^63-1 units, as
#   Kubernetes does. A negative quantity (other than zero) is not valid: resource limits cannot be
#   negative. Unreadable input leaves `nanos` undefined.
package edgepolicy.lib.quantity

import data.edgepolicy.lib.decimal

# METADATA
# title: _pattern
# description: |
#   Sign, whole digits, fraction digits, suffix (with the exponent sign and digits captured).
#   Kubernetes reads `.`, `+` and `-` as 0 too.
_pattern := `^([+-]?)([0-9]*)(?:\.([0-9]*))?(|n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE]([+-]?)([0-9]+))$`

# METADATA
# title: _decimal_exponents
# description: 'The power of ten of each decimal suffix.'
_decimal_exponents := {"": 0, "n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# METADATA
# title: _binary_multipliers
# description: 'The factor of each binary suffix (2^10 to 2^60).'
_binary_multipliers := {
	"Ki": 1024,
	"Mi": 1048576,
	"Gi": 1073741824,
	"Ti": 1099511627776,
	"Pi": 1125899906842624,
	"Ei": 1152921504606846976,
}

# METADATA
# title: _max_exponent
# description: 'The largest decimal exponent accepted (bounds the work a quantity can cause).'
_max_exponent := 24

# METADATA
# title: _spaces
# description: |
#   What the API server trims around a quantity (Go's strings.TrimSpace on the raw JSON text):
#   spaces and the Unicode spaces a JSON encoder writes unescaped. Tabs and newlines reach it
#   escaped (`\t`), so it refuses them, and so does this.
_spaces := " \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"

# METADATA
# title: max_nanos
# description: The cap of a binary-suffixed quantity, 2^63-1 units, in nano-units.
max_nanos := 9223372036854775807000000000

# METADATA
# title: nanos
# description: |
#   The value of quantity `q` (a string, or a JSON number) as an exact integer of nano-units;
#   undefined when `q` is not a valid non-negative quantity.
nanos(q) := _string_nanos(json.marshal(q)) if is_number(q)

nanos(q) := _string_nanos(trim(q, _spaces)) if is_string(q)

# METADATA
# title: is_valid
# description: True when `q` is a valid non-negative quantity.
is_valid(q) if nanos(q)

# METADATA
# title: resource_nanos
# description: |
#   The value of quantity `q` as a limit of resource `name`, in nano-units; undefined when not
#   valid for it. Extended resources (`nvidia.com/gpu`, any name with a `/` outside
#   `kubernetes.io/`) must be whole numbers, as the API server validates (its milli-value, rounded
#   up, is a multiple of 1000), and count as whole devices (the value rounded up, as the scheduler
#   counts them).
resource_nanos(name, q) := value if {
	not is_extended_resource(name)
	value := nanos(q)
} else := whole if {
	value := nanos(q)
	remainder := value % 1000000000
	_is_whole_for_kubernetes(remainder)
	whole := decimal.ceil_integer(decimal.of_nanos(value)) * 1000000000
}

# METADATA
# title: is_extended_resource
# description: 'True for an extended resource name (`nvidia.com/gpu`): one with a `/` and not in the `kubernetes.io/` namespace.'
is_extended_resource(name) if {
	contains(name, "/")
	not contains(name, "kubernetes.io/")
	not startswith(name, "requests.")
}

# METADATA
# title: _is_whole_for_kubernetes
# description: |
#   True when a value whose nano-units past the last whole unit are `remainder` passes the API
#   server's integer check: its milli-value rounded up is a whole number of units.
_is_whole_for_kubernetes(0)

_is_whole_for_kubernetes(remainder) if remainder > 999000000

# METADATA
# title: _string_nanos
# description: 'The nano-units of the quantity text `s`.'
_string_nanos(s) := value if {
	s != ""
	[[_, sign, whole, fraction, suffix, exponent_sign, exponent_digits]] := regex.find_all_string_submatch_n(_pattern, s, 1)
	power := _power_of_ten(suffix, exponent_sign, exponent_digits)
	binary := object.get(_binary_multipliers, suffix, 1)
	exact := decimal.of_digits(concat("", [whole, fraction]), (power - count(fraction)) + 9, "ceil")
	value := _capped(decimal.ceil_integer(decimal.scale(exact, binary)), binary)
	_sign_allowed(sign, value)
}

# METADATA
# title: _power_of_ten
# description: 'The decimal exponent of `suffix` (0 for a binary suffix); undefined beyond ±`_max_exponent`.'
_power_of_ten(suffix, _, _) := _decimal_exponents[suffix]

_power_of_ten(suffix, _, _) := 0 if _binary_multipliers[suffix]

_power_of_ten(suffix, sign, digits) := exponent if {
	digits != ""
	magnitude := trim_left(digits, "0")
	count(magnitude) <= 2
	exponent := _signed(sign, _to_int(magnitude))
	abs(exponent) <= _max_exponent
	suffix != ""
}

# METADATA
# title: _to_int
# description: 'The integer of up to two digits `digits` without leading zeros (`""` is 0).'
_to_int("") := 0

_to_int(digits) := to_number(digits) if digits != ""

# METADATA
# title: _signed
# description: '`magnitude` with `sign` (`-` negates).'
_signed("-", magnitude) := 0 - magnitude

_signed(sign, magnitude) := magnitude if sign != "-"

# METADATA
# title: _capped
# description: 'Kubernetes caps binary-suffixed quantities at 2^63-1 units.'
_capped(value, binary) := max_nanos if {
	binary > 1
	value > max_nanos
} else := value

# METADATA
# title: _sign_allowed
# description: 'A minus sign is allowed on zero only (`-0` is 0; limits cannot be negative).'
_sign_allowed(sign, _) if sign != "-"

_sign_allowed("-", 0)
