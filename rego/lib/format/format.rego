# METADATA
# title: Number formatting for messages
# description: Renders numbers compactly for people (at most three decimals).
package edgepolicy.lib.format

# METADATA
# title: number
# description: '`x` rounded to three decimals, without trailing zeros (`0.5`, `12`, `4.167`).'
number(x) := sprintf("%v", [round(x * 1000) / 1000])

# METADATA
# title: gibibytes
# description: 'A byte count as GiB, e.g. `36Gi`, `0.5Gi`.'
gibibytes(bytes) := sprintf("%sGi", [number(bytes / 1073741824)])

# METADATA
# title: string_hint
# description: |
#   A reminder, for messages about annotation `value`s, that annotation values are strings:
#   `""` for a string, else ` (annotation values are strings: quote it)`.
string_hint(value) := "" if is_string(value)

else := " (annotation values are strings: quote it)"
