#!/usr/bin/env bash
# The Rego gate: `opa fmt` clean, `opa check --strict` clean, every `opa test` passing, and line
# coverage of the policy files in rego/ (tests excluded) at or above the threshold.
# Usage: scripts/test-rego.sh   (env: EDGEPOLICY_OPA to use another OPA, REGO_COVERAGE_MIN=90)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OPA="${EDGEPOLICY_OPA:-$ROOT/.tools/bin/opa}"
REGO="$ROOT/rego"
MIN="${REGO_COVERAGE_MIN:-90}"

[[ -x "$OPA" ]] || { echo "test-rego: no OPA at $OPA; run \`make tools\`" >&2; exit 2; }
cd "$ROOT"

echo "test-rego: opa fmt"
if ! "$OPA" fmt --list --fail rego; then
  echo "test-rego: the files above are not formatted; run \`$OPA fmt -w rego\`" >&2
  exit 1
fi

echo "test-rego: opa check --strict"
"$OPA" check --strict rego

echo "test-rego: # METADATA on every package and every rule"
python3 - "$OPA" "$REGO" <<'PY'
"""Every package has a package annotation (in one of its files) and every rule name an annotation."""
import collections
import json
import pathlib
import subprocess
import sys

opa, rego_dir = sys.argv[1], pathlib.Path(sys.argv[2])
annotated_packages, packages, missing = set(), {}, []
for path in sorted(rego_dir.rglob("*.rego")):
    parsed = subprocess.run(
        [opa, "parse", "--format", "json", "--json-include", "locations", str(path)],
        capture_output=True, text=True, check=True,
    )
    ast = json.loads(parsed.stdout)
    package = ".".join(str(term["value"]) for term in ast["package"]["path"][1:])
    packages.setdefault(package, path)
    if any(a.get("scope") == "package" for a in ast.get("annotations", [])):
        annotated_packages.add(package)
    rules = collections.defaultdict(bool)
    for rule in ast.get("rules", []):
        head = rule["head"]
        name = head["ref"][0]["value"] if head.get("ref") else head["name"]
        rules[name] |= bool(rule.get("annotations"))
    missing += [f"{path}: rule {name}" for name, annotated in rules.items() if not annotated]
missing += [f"{path}: package {p}" for p, path in packages.items() if p not in annotated_packages]
if missing:
    sys.exit("test-rego: no # METADATA annotation for:\n  " + "\n  ".join(missing))
PY

echo "test-rego: opa test"
"$OPA" test rego

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"$OPA" test --coverage --format json rego >"$report"

python3 - "$report" "$REGO" "$MIN" <<'PY'
"""Line coverage of the non-test Rego files, from `opa test --coverage --format json`."""
import json
import os
import sys

report_path, rego_dir, minimum = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(report_path, encoding="utf-8") as handle:
    files = json.load(handle).get("files", {})


def lines(ranges):
    return {n for r in ranges or [] for n in range(r["start"]["row"], r["end"]["row"] + 1)}


covered_total = not_covered_total = 0
for name in sorted(files):
    if name.endswith("_test.rego"):
        continue
    covered = lines(files[name].get("covered"))
    not_covered = lines(files[name].get("not_covered")) - covered
    covered_total += len(covered)
    not_covered_total += len(not_covered)
    total = len(covered) + len(not_covered)
    percent = 100.0 * len(covered) / total if total else 100.0
    missing = ",".join(str(n) for n in sorted(not_covered))
    print(f"  {os.path.relpath(name, rego_dir) if os.path.isabs(name) else name}: {percent:.1f}%"
          + (f" (not covered: {missing})" if missing else ""))

total = covered_total + not_covered_total
if total == 0:
    sys.exit("test-rego: the coverage report names no Rego files")
percent = 100.0 * covered_total / total
print(f"test-rego: line coverage of rego/ (tests excluded) {percent:.1f}% (minimum {minimum:g}%)")
if percent < minimum:
    sys.exit(f"test-rego: coverage {percent:.1f}% is below {minimum:g}%")
PY
