# METADATA
# title: Kubernetes resource quantities
# description: |
#   Reads quantities as the API server does (k8s.io/apimachinery resource.ParseQuantity behind
#   Quantity.UnmarshalJSON): `500m`, `2`, `512Mi`, `1G`, `1.5Gi`, `1e9`, `1E3`, `.5`, `5.`;
#   decimal SI suffixes n u m k M G T P E, binary suffixes Ki Mi Gi Ti Pi Ei and decimal exponents
#   e/E (any number of digits, at most 24; a lower one than -24 rounds up to a nano-unit); spaces around the value are ignored; a
#   JSON number is read from its literal text. The value is an exact integer count of nano-units
#   (10^-9 of the base unit: cores, bytes, devices), Kubernetes' own finest scale: finer values
#   round up to the next nano-unit and binary-suffixed values are capped at 2^63-1 units, as
#   Kubernetes does. A negative quantity (other than zero) is not valid: resource limits cannot be
#   negative. Unreadable input leaves `nanos` undefined. Literals are written inline on the hot
#   path: in OPA a reference to a constant rule costs more than the arithmetic.
package edgepolicy.lib.quantity

import data.edgepolicy.lib.decimal

# METADATA
# title: _suffix_scales
# description: 'The power of ten and the factor (a power of two) of each fixed suffix.'
_suffix_scales := {
	"": [0, 1],
	"n": [-9, 1],
	"u": [-6, 1],
	"m": [-3, 1],
	"k": [3, 1],
	"M": [6, 1],
	"G": [9, 1],
	"T": [12, 1],
	"P": [15, 1],
	"E": [18, 1],
	"Ki": [0, 1024],
	"Mi": [0, 1048576],
	"Gi": [0, 1073741824],
	"Ti": [0, 1099511627776],
	"Pi": [0, 1125899906842624],
	"Ei": [0, 1152921504606846976],
}

# METADATA
# title: nanos
# description: |
#   The value of quantity `q` (a string, or a JSON number) as an exact integer of nano-units;
#   undefined when `q` is not a valid non-negative quantity. Around a string, what the API server
#   trims (Go's strings.TrimSpace on the raw JSON text) is ignored: spaces and the Unicode spaces
#   a JSON encoder writes unescaped; tabs and newlines reach it escaped (`\t`) and are refused.
nanos(q) := _string_nanos(trim(q, " \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000")) if {
	is_string(q)
} else := _string_nanos(json.marshal(q)) if {
	is_number(q)
}

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
# description: |
#   The nano-units of the quantity text `s`. Kubernetes takes a minus sign on zero (`-0`, `-.`,
#   `-`); any other negative value is refused, since limits cannot be negative.
_string_nanos(s) := _unsigned_nanos(s) if {
	not startswith(s, "-")
} else := 0 if {
	startswith(s, "-")
	_unsigned_nanos(concat("", ["+", substring(s, 1, -1)])) == 0
}

# METADATA
# title: _unsigned_nanos
# description: |
#   The nano-units of the quantity text `s` without a minus sign: whole digits, fraction digits,
#   suffix (with the exponent's sign and digits). Like Kubernetes, `.`, `+` and a bare suffix read
#   as 0 where its parser's fast path takes them (`Ki`, `e3`), and are refused where it does not
#   (`Pi`, `Ei`, an exponent below -9).
_unsigned_nanos(s) := value if {
	[[_, whole, fraction, suffix, exponent_sign, exponent_digits]] := regex.find_all_string_submatch_n(
		`^\+?([0-9]*)(?:\.([0-9]*))?(|n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE]([+-]?)([0-9]+))$`,
		s, 1,
	)
	s != ""
	[power, binary] := _suffix_scale(suffix, exponent_sign, exponent_digits, whole)
	digits := concat("", [whole, fraction])
	_is_readable(digits, power, binary)
	value := _capped(_scaled(digits, (power - count(fraction)) + 9, binary), binary)
}

# METADATA
# title: _is_readable
# description: |
#   Kubernetes reads a quantity without any digit only on its fast path: a decimal power of at
#   least -9, or a binary suffix up to Ti.
_is_readable(digits, _, _) if digits != ""

_is_readable("", power, binary) if {
	power >= -9
	binary <= 1099511627776
}

# METADATA
# title: _suffix_scale
# description: |
#   `[power of ten, factor]` of `suffix`. An exponent is undefined above 24 and, negative,
#   beyond Kubernetes' int32 (which it would wrap around). Below -24 it is raised to at most
#   -10 - (the number of `whole` digits): the value stays below a nano-unit either way, so it
#   rounds up to the same result, without building a huge power of ten.
_suffix_scale(suffix, sign, digits, whole) := scale if {
	scale := _suffix_scales[suffix]
} else := [exponent, 1] if {
	magnitude := trim_left(digits, "0")
	count(magnitude) <= 2
	exponent := _signed(sign, decimal.digits_value(magnitude))
	abs(exponent) <= 24
} else := [max([0 - magnitude, -10 - count(whole)]), 1] if {
	sign == "-"
	count(trim_left(digits, "0")) <= 10
	magnitude := decimal.digits_value(digits)
	magnitude <= 2147483648
}

# METADATA
# title: _signed
# description: '`magnitude` with `sign` (`-` negates).'
_signed("-", magnitude) := 0 - magnitude

_signed(sign, magnitude) := magnitude if sign != "-"

# METADATA
# title: _scaled
# description: |
#   The digits `digits` x 10^`k` x `binary`, rounded up to an integer: directly for the usual
#   short quantity with no digits below a nano-unit, else through the exact decimal.
_scaled(digits, k, binary) := (decimal.digits_value(digits) * to_number(concat("", ["1", substring("0000000000000000000000000000000000000000", 0, k)]))) * binary if {
	k >= 0
	k <= 40
	count(digits) <= 18
} else := decimal.ceil_integer(decimal.scale(decimal.of_digits(digits, k, "ceil"), binary))

# METADATA
# title: _capped
# description: 'Kubernetes caps binary-suffixed quantities (factor `binary` > 1) at 2^63-1 units.'
_capped(value, 1) := value

_capped(value, binary) := min([value, 9223372036854775807000000000]) if binary != 1
