# METADATA
# title: Exact decimal numbers
# description: |
#   Exact arithmetic for verdicts. OPA adds, multiplies and compares integers exactly (big
#   integers beyond int64), but divides, and multiplies anything that is not an integer, in
#   64-bit-mantissa floating point (`0.1 * 9 > 0.9` is true). So every number a verdict depends on
#   is held as a decimal `{"m": M, "e": E}`, the value M x 10^E with M a non-negative integer and E
#   an integer, and only integer `+`, `*` and comparisons are applied to M. A JSON number is read
#   from its literal text (`json.marshal`), never through a float. Formatting for messages works
#   on the digits too, so no float appears anywhere between the manifest and the message.
package edgepolicy.lib.decimal

# METADATA
# title: _number_pattern
# description: 'An unsigned decimal number in plain or exponent notation: `8`, `0.9`, `.5`, `5.`, `1e-3`, `1.0E+2`.'
_number_pattern := `^\+?([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?)([0-9]+))?$`

# METADATA
# title: _max_digits
# description: |
#   The most significant digits read exactly (to_number reads at most ~308 digits). Longer
#   values are rounded up (`of_digits` with `"ceil"`) or down (`"floor"`), as the caller needs to
#   stay fail-closed; no realistic quantity or limit comes near.
_max_digits := 300

# METADATA
# title: zero
# description: The decimal 0.
zero := {"m": 0, "e": 0}

# METADATA
# title: from_number
# description: |
#   The non-negative JSON number `n` as a decimal, read exactly from its literal text; undefined
#   otherwise. A whole number (`8`, `3.0`) takes a short cut: the comparison with its rounding is
#   exact, and `n * 1` is integer arithmetic, which writes its digits out.
from_number(n) := {"m": n * 1, "e": 0} if {
	is_number(n)
	n >= 0
	n == round(n)
} else := parse(json.marshal(n), "floor") if {
	is_number(n)
	n >= 0
}

# METADATA
# title: parse
# description: |
#   The unsigned decimal string `s` (`8`, `12.5`, `.5`, `+10`, `1e1`) as a decimal; undefined
#   when it is not one. More significant digits than `_max_digits` are rounded by `mode`:
#   `"floor"` for a limit, `"ceil"` for a usage, so that the verdict stays fail-closed.
parse(s, mode) := of_digits(concat("", [whole, fraction]), _exponent(sign, digits) - count(fraction), mode) if {
	[[_, whole, fraction, sign, digits]] := regex.find_all_string_submatch_n(_number_pattern, s, 1)
	concat("", [whole, fraction]) != ""
}

# METADATA
# title: of_digits
# description: |
#   The decimal of the digit string `digits` (leading zeros allowed) times 10^`e`, normalized (no
#   trailing zeros in M). Beyond `_max_digits` significant digits it is rounded by `mode`
#   (`"ceil"` or `"floor"`).
of_digits(digits, e, mode) := _normalized(_significant(trim_left(digits, "0"), e, mode))

# METADATA
# title: _significant
# description: 'At most `_max_digits` leading digits of `digits` (no leading zeros) with their exponent, rounded by `mode`.'
_significant(digits, e, _) := {"digits": digits, "e": e} if count(digits) <= _max_digits

_significant(digits, e, mode) := {"digits": kept, "e": e + dropped} if {
	count(digits) > _max_digits
	dropped := count(digits) - _max_digits
	kept := sprintf("%d", [_round_dropped(to_number(substring(digits, 0, _max_digits)), substring(digits, _max_digits, -1), mode)])
}

# METADATA
# title: _round_dropped
# description: '`kept`, plus 1 when rounding up (`"ceil"`) and the `dropped` digits are not all zero.'
_round_dropped(kept, dropped, mode) := kept + 1 if {
	mode == "ceil"
	trim_left(dropped, "0") != ""
} else := kept

# METADATA
# title: _normalized
# description: 'The decimal of `{"digits", "e"}` with trailing zeros moved into the exponent.'
_normalized(parts) := zero if {
	trim_right(parts.digits, "0") == ""
} else := {"m": to_number(stripped), "e": parts.e + (count(parts.digits) - count(stripped))} if {
	stripped := trim_right(parts.digits, "0")
}

# METADATA
# title: _exponent
# description: 'The exponent written as `sign` and `digits` (`""` is 0).'
_exponent(_, "") := 0

_exponent(sign, digits) := value if {
	digits != ""
	magnitude := digits_value(digits)
	value := _signed(sign, magnitude)
}

# METADATA
# title: _signed
# description: '`magnitude` with `sign` (`-` negates).'
_signed("-", magnitude) := 0 - magnitude

_signed(sign, magnitude) := magnitude if sign != "-"

# METADATA
# title: digits_value
# description: 'The integer written as `digits` (leading zeros allowed, `to_number` refuses them).'
digits_value(digits) := 0 if trim_left(digits, "0") == ""

else := to_number(trim_left(digits, "0"))

# METADATA
# title: of_integer
# description: The non-negative integer `n` as a decimal.
of_integer(n) := {"m": n, "e": 0}

# METADATA
# title: of_nanos
# description: The decimal of `n` nano-units (an integer count of 10^-9).
of_nanos(n) := {"m": n, "e": -9}

# METADATA
# title: times
# description: The exact product of decimals `a` and `b`.
times(a, b) := {"m": a.m * b.m, "e": a.e + b.e}

# METADATA
# title: scale
# description: The exact product of decimal `a` and the non-negative integer `n`.
scale(a, n) := {"m": a.m * n, "e": a.e}

# METADATA
# title: greater
# description: |
#   True when decimal `a` is strictly greater than decimal `b`, decided exactly: by the number of
#   integer digits first (so exponents far apart never build huge powers of ten), then on integers
#   brought to a common exponent.
greater(a, b) if {
	a.m > 0
	b.m == 0
}

greater(a, b) if {
	a.m > 0
	b.m > 0
	_is_greater(a, b)
}

# METADATA
# title: _is_greater
# description: |
#   `a` > `b` for positive decimals: on integers brought to the lower exponent when the exponents
#   are close (the usual case), else by the number of integer digits first (so exponents far
#   apart never build huge powers of ten).
_is_greater(a, b) if {
	abs(a.e - b.e) <= 64
	low := min([a.e, b.e])
	a.m * pow10(a.e - low) > b.m * pow10(b.e - low)
}

_is_greater(a, b) if {
	abs(a.e - b.e) > 64
	_magnitude(a) > _magnitude(b)
}

_is_greater(a, b) if {
	abs(a.e - b.e) > 64
	_magnitude(a) == _magnitude(b)
	low := min([a.e, b.e])
	a.m * pow10(a.e - low) > b.m * pow10(b.e - low)
}

# METADATA
# title: _magnitude
# description: 'The position of the leading digit of decimal `a` (M > 0): a is in [10^(k-1), 10^k).'
_magnitude(a) := count(sprintf("%d", [a.m])) + a.e

# METADATA
# title: pow10
# description: 10^`k` as an exact integer, for a whole `k` >= 0.
pow10(k) := to_number(concat("", ["1", substring("0000000000000000000000000000000000000000000000000000000000000000", 0, k)])) if {
	k >= 0
	k <= 64
} else := product([10 | some _ in numbers.range(1, k)]) if k > 0

# METADATA
# title: ceil_integer
# description: The smallest integer at least decimal `a`.
ceil_integer(a) := a.m * pow10(a.e) if {
	a.e >= 0
} else := _shift_down(a.m, 0 - a.e, "ceil")

# METADATA
# title: _shift_down
# description: |
#   `n` / 10^`k` rounded by `mode`, for integers `n` >= 0 and `k` > 0, on the decimal digits of `n`
#   (OPA's division is floating point).
_shift_down(n, k, mode) := _round_dropped(digits_value(kept), dropped, mode) if {
	text := sprintf("%d", [n])
	width := count(text)
	kept := substring(text, 0, max([0, width - k]))
	dropped := substring(text, max([0, width - k]), -1)
}

# METADATA
# title: text
# description: |
#   Decimal `a` written out exactly in plain notation, without trailing zeros: `0.9`, `12`,
#   `1181116006.4`. For messages only.
text(a) := _plain(sprintf("%d", [a.m]), a.e)

# METADATA
# title: _plain
# description: 'The digits `digits` (no leading zeros) times 10^`e` in plain notation.'
_plain(digits, e) := concat("", [digits, _zeros(e)]) if {
	e >= 0
} else := _with_point(concat("", [_zeros(((0 - e) + 1) - count(digits)), digits]), 0 - e) if {
	count(digits) <= 0 - e
} else := _with_point(digits, 0 - e)

# METADATA
# title: _zeros
# description: '`n` zeros.'
_zeros(n) := substring("0000000000000000000000000000000000000000000000000000000000000000", 0, n) if {
	n <= 64
} else := concat("", ["0" | some _ in numbers.range(1, n)])

# METADATA
# title: _with_point
# description: '`digits` (more than `places` of them) with a decimal point before the last `places`, trailing zeros dropped.'
_with_point(digits, places) := _joined(
	substring(digits, 0, count(digits) - places),
	trim_right(substring(digits, count(digits) - places, -1), "0"),
)

# METADATA
# title: _joined
# description: '`whole`.`fraction`, or `whole` alone when there is no fraction.'
_joined(whole, "") := whole

_joined(whole, fraction) := concat(".", [whole, fraction]) if fraction != ""

# METADATA
# title: rounded
# description: Decimal `a` rounded half up to `places` decimals (for messages).
rounded(a, places) := a if {
	a.e >= 0 - places
} else := of_digits(sprintf("%d", [_shift_down((a.m * 10) + (5 * pow10(k)), k + 1, "floor")]), 0 - places, "floor") if {
	k := (0 - a.e) - places
}
