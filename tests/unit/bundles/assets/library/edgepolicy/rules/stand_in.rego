# METADATA
# description: |
#   The stand-in library's one rule package: like the shipped library, it defines
#   `data.edgepolicy.rules`, which the builder checks for findings of the wrong shape.
package edgepolicy.rules.stand_in

findings := set()
