# METADATA
# title: Number formatting for messages
# description: |
#   Renders numbers compactly for people (at most three decimals). The `decimal_*` functions
#   render the exact decimals of `edgepolicy.lib.decimal` from their digits, with no float.
package edgepolicy.lib.format

import data.edgepolicy.lib.decimal

# METADATA
# title: number
# description: '`x` rounded to three decimals, without trailing zeros (`0.5`, `12`, `4.167`).'
number(x) := sprintf("%v", [round(x * 1000) / 1000])

# METADATA
# title: string_hint
# description: |
#   A reminder, for messages about annotation `value`s, that annotation values are strings:
#   `""` for a string, else ` (annotation values are strings: quote it)`.
string_hint(value) := "" if is_string(value)

else := " (annotation values are strings: quote it)"

# METADATA
# title: above
# description: |
#   `x`, which is above `limit`, as `number` renders it, or with full precision when rounding
#   would make it look equal to `limit` (`8.0004` above 8, not `8`).
above(x, limit) := number(x) if number(x) != number(limit)

else := sprintf("%v", [x])

# METADATA
# title: counted
# description: '`n` with its noun, singular for exactly 1: `1 pod`, `3 pods`, `0.5 cores`.'
counted(n, singular, plural) := _with_noun(number(n), singular, plural)

# METADATA
# title: counted_above
# description: '`n`, which is above `limit`, with its noun, rendered as `above` does.'
counted_above(n, limit, singular, plural) := _with_noun(above(n, limit), singular, plural)

# METADATA
# title: _with_noun
# description: 'Rendered number `text` followed by `singular` when it reads 1, else `plural`.'
_with_noun("1", singular, _) := sprintf("1 %s", [singular])

_with_noun(text, _, plural) := sprintf("%s %s", [text, plural]) if text != "1"

# METADATA
# title: defaulted
# description: |
#   A count field `name` whose `value` defaults to `fallback`, for messages: `spec.replicas 2`,
#   `spec.replicas 1 by default` (absent or null), or the value when it is not a number.
defaulted(name, value, fallback) := sprintf("%s %s", [name, number(value)]) if is_number(value)

else := sprintf("%s %s by default", [name, number(fallback)]) if value == null

else := sprintf("%s %s, not a number, counted as %s", [name, json.marshal(value), number(fallback)])

# METADATA
# title: exact
# description: |
#   `x` as `number` renders it when three decimals hold it exactly, else with every digit, for
#   the factors of a message (a cpu limit of `1.0001` is not shown as `1`).
exact(x) := number(x) if round(x * 1000) / 1000 == x

else := sprintf("%v", [x])

# METADATA
# title: decimal_number
# description: 'Decimal `d` rounded half up to three decimals, without trailing zeros (`0.5`, `12`, `4.167`).'
decimal_number(d) := _three_decimals(decimal.text(d))

# METADATA
# title: _three_decimals
# description: 'The exact decimal text `text` with at most three decimals, rounded half up when it has more.'
_three_decimals(text) := text if {
	count(split(text, ".")) == 1
} else := text if {
	count(split(text, ".")[1]) <= 3
} else := decimal.text(decimal.rounded(decimal.parse(text, "floor"), 3))

# METADATA
# title: decimal_above
# description: |
#   Decimal `d`, which is above decimal `limit`, as `decimal_number` renders it, or exactly when
#   rounding would make it look equal to `limit` (`8.0004` above 8, not `8`).
decimal_above(d, limit) := shown if {
	shown := decimal_number(d)
	shown != decimal_number(limit)
} else := decimal.text(d)

# METADATA
# title: decimal_counted
# description: 'Decimal `d` written exactly with its noun, singular for exactly 1: `1 GPU`, `0.3 CPU cores`.'
decimal_counted(d, singular, plural) := _with_noun(decimal.text(d), singular, plural)

# METADATA
# title: decimal_counted_above
# description: 'Decimal `d`, which is above decimal `limit`, with its noun, rendered as `decimal_above` does.'
decimal_counted_above(d, limit, singular, plural) := _with_noun(decimal_above(d, limit), singular, plural)

# METADATA
# title: decimal_gibibytes
# description: 'Decimal byte count `bytes` as GiB (three decimals at most), e.g. `36Gi`, `1.1Gi`.'
decimal_gibibytes(bytes) := sprintf("%sGi", [decimal_number(decimal.times(bytes, _per_gibibyte))])

# METADATA
# title: _per_gibibyte
# description: '2^-30 as an exact decimal: 5^30 x 10^-30.'
_per_gibibyte := {"m": 931322574615478515625, "e": -30}
