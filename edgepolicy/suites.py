"""Policy test suites for ``edgepolicy verify``: cases with inputs and expected verdicts.

A case is a directory holding a case file (``edgepolicy-test.yaml``, format in docs/verify.md)
that names the case's input manifests, optional data files, and the verdict expected for every
object. :func:`run_cases` decides each case's inputs exactly as ``edgepolicy check`` would
(:class:`~edgepolicy.checking.CheckSession`, one OPA per distinct data document) and compares.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgepolicy.checking import CheckReport, CheckResult, CheckSession, PolicySource
from edgepolicy.data_files import load_data_files
from edgepolicy.errors import InputError, UsageError
from edgepolicy.manifests import Manifest, field_key_lines, load_paths, yaml_documents
from edgepolicy.verification_keys import VerificationKey

CASE_FILE = "edgepolicy-test.yaml"
API_VERSION = "edgepolicy.apexlogic.com/v1alpha1"
KIND = "PolicyTest"
_CASE_FIELDS = frozenset(
    {"apiVersion", "kind", "description", "inputs", "data", "namespace", "expected"}
)
_VERDICT_LISTS = ("violations", "warnings", "dryrun")
_VERDICT_FIELDS = frozenset({"allowed", *_VERDICT_LISTS})


@dataclass(frozen=True)
class Verdict:
    """What a decision says about one object: allowed or not, and the rule ids of its findings
    by action (sorted; a rule appears once per finding)."""

    allowed: bool
    violations: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    dryrun: tuple[str, ...] = ()

    @classmethod
    def of(cls, result: CheckResult) -> Verdict:
        """Return the verdict of a checked object."""
        decision = result.decision
        return cls(
            allowed=decision.allowed,
            violations=tuple(sorted(finding.rule for finding in decision.violations)),
            warnings=tuple(sorted(finding.rule for finding in decision.warnings)),
            dryrun=tuple(sorted(finding.rule for finding in decision.dryrun)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the case file's form of the verdict."""
        return {
            "allowed": self.allowed,
            "violations": list(self.violations),
            "warnings": list(self.warnings),
            "dryrun": list(self.dryrun),
        }

    def differences(self, actual: Verdict) -> list[str]:
        """Describe each field where ``actual`` differs from this expected verdict."""
        expected_fields = self.to_dict()
        actual_fields = actual.to_dict()
        return [
            f"{field}: expected {_show(expected_fields[field])}, got {_show(actual_fields[field])}"
            for field in expected_fields
            if expected_fields[field] != actual_fields[field]
        ]


@dataclass(frozen=True)
class ObjectKey:
    """How a case file names an object: ``Kind/name`` or ``Kind/namespace/name`` (and the line
    of the case file where it does, when known; not part of the key's identity)."""

    kind: str
    namespace: str | None
    name: str
    line: int | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str, line: int | None = None) -> ObjectKey:
        """Parse a key of the ``expected`` mapping, written on ``line`` of the case file.

        Raises:
            ValueError: the key is not ``Kind/name`` or ``Kind/namespace/name``.
        """
        parts = text.split("/")
        if len(parts) == 2 and all(parts):
            return cls(parts[0], None, parts[1], line)
        if len(parts) == 3 and all(parts):
            return cls(parts[0], parts[1], parts[2], line)
        raise ValueError(f"expected Kind/name or Kind/namespace/name, got {text!r}")

    def matches(self, result: CheckResult) -> bool:
        """Whether ``result`` is the object this key names."""
        return (
            result.kind == self.kind
            and result.name == self.name
            and (self.namespace is None or result.namespace == self.namespace)
        )

    def __str__(self) -> str:
        if self.namespace is None:
            return f"{self.kind}/{self.name}"
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PolicyCase:
    """One case of a suite, read from its case file (paths resolved against its directory)."""

    file: Path
    inputs: tuple[Path, ...]
    data: tuple[Path, ...]
    namespace: str
    expected: tuple[tuple[ObjectKey, Verdict], ...]
    description: str = ""
    expected_line: int | None = None

    @property
    def name(self) -> str:
        """The case's name: its directory."""
        return str(self.file.parent)

    def expectation_line(self, key: str) -> int | None:
        """The line of the case file where ``expected`` names ``key`` (a key as
        :class:`ObjectOutcome` holds it), else the line of ``expected:``, when known."""
        lines = (item.line for item, _ in self.expected if str(item) == key)
        return next((line for line in lines if line is not None), self.expected_line)


@dataclass(frozen=True)
class ObjectOutcome:
    """The expected and the actual verdict of one object (either may be missing)."""

    key: str
    expected: Verdict | None
    result: CheckResult | None

    @property
    def actual(self) -> Verdict | None:
        """The verdict the decision gave, when the object is among the inputs."""
        return Verdict.of(self.result) if self.result is not None else None

    @property
    def passed(self) -> bool:
        """Whether the object got exactly the expected verdict."""
        return self.expected is not None and self.expected == self.actual

    def problems(self) -> list[str]:
        """Say what is not as expected (empty when the object passed)."""
        expected, actual = self.expected, self.actual
        if actual is None:
            return ["expected, but no such object among the inputs"]
        if expected is None:
            return [
                f"no expected verdict for this object (got {_describe(actual)}): add it to "
                f"expected in {CASE_FILE}"
            ]
        return expected.differences(actual)


@dataclass(frozen=True)
class CaseOutcome:
    """One case run: every object's outcome, and the check report behind them."""

    case: PolicyCase
    objects: tuple[ObjectOutcome, ...]
    report: CheckReport

    @property
    def passed(self) -> bool:
        """Whether every object got its expected verdict."""
        return all(outcome.passed for outcome in self.objects)

    @property
    def failures(self) -> int:
        """How many objects did not get their expected verdict."""
        return sum(1 for outcome in self.objects if not outcome.passed)


@dataclass(frozen=True)
class SuiteReport:
    """The outcome of every case, in the order the cases were found."""

    cases: tuple[CaseOutcome, ...]
    started_at: datetime | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        """How many cases failed."""
        return sum(1 for case in self.cases if not case.passed)

    def exit_code(self) -> int:
        """Return 1 when a case failed, else 0."""
        return 1 if self.failed else 0


def find_cases(paths: Sequence[str | Path]) -> list[Path]:
    """Return the case files under ``paths``: a directory is searched recursively for
    ``edgepolicy-test.yaml`` (skipping hidden directories), a file is taken as a case file.

    Raises:
        UsageError: a path does not exist, or no case file is found at all.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(_case_files(path))
        else:
            raise UsageError(f"{path}: no such file or directory")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise UsageError(
            f"no {CASE_FILE} found in {', '.join(str(path) for path in paths)}: nothing to verify"
        )
    return unique


def _case_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob(CASE_FILE)):
        relative = path.relative_to(directory).parts
        if not any(part.startswith(".") for part in relative) and path.is_file():
            yield path


def load_case(file: Path) -> PolicyCase:
    """Read and check a case file.

    Raises:
        InputError: the file is unreadable or not valid YAML, or a field is missing, unknown,
            of the wrong type, names a path that does not exist, or gives a verdict that
            contradicts itself; the message names the file and the field.
    """
    where = str(file)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read case file: {error}", path=where) from error
    documents = [doc for doc in yaml_documents(text, where) if doc[0] is not None]
    if len(documents) != 1:
        raise InputError(f"a case file holds one YAML document, found {len(documents)}", path=where)
    document, line, _ = documents[0]
    if not isinstance(document, dict):
        raise InputError(
            f"a case file holds a mapping, got {type(document).__name__}", path=where, line=line
        )
    unknown = sorted(str(key) for key in document if key not in _CASE_FIELDS)
    if unknown:
        raise InputError(
            f"unknown field {unknown[0]} (known: {', '.join(sorted(_CASE_FIELDS))})", path=where
        )
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise InputError(
            f"apiVersion and kind: expected {API_VERSION} and {KIND}, got "
            f"{document.get('apiVersion')!r} and {document.get('kind')!r}",
            path=where,
        )
    directory = file.parent
    inputs = _paths(document, "inputs", directory, where, required=True)
    data = _paths(document, "data", directory, where, required=False)
    for position, path in enumerate(data):
        if not path.is_file():
            raise InputError(f"data[{position}]: {path} is not a file", path=where)
    namespace = document.get("namespace", "default")
    if not isinstance(namespace, str) or not namespace:
        raise InputError(f"namespace: expected a namespace name, got {namespace!r}", path=where)
    description = document.get("description", "")
    if not isinstance(description, str):
        raise InputError(f"description: expected a string, got {description!r}", path=where)
    expected_line, key_lines = field_key_lines(text, where, "expected")
    return PolicyCase(
        file=file,
        inputs=inputs,
        data=data,
        namespace=namespace,
        expected=_expected(document.get("expected"), where, key_lines),
        description=description,
        expected_line=expected_line,
    )


def _paths(
    document: Mapping[str, Any], field: str, directory: Path, where: str, *, required: bool
) -> tuple[Path, ...]:
    value = document.get(field)
    if not required and (value is None or value == []):
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(
            f"{field}: expected a non-empty list of paths relative to the case file, got {value!r}",
            path=where,
        )
    paths = tuple(directory / item for item in value)
    for position, path in enumerate(paths):
        if not path.exists():
            raise InputError(f"{field}[{position}]: {path}: no such file or directory", path=where)
    return paths


def _expected(
    value: Any, where: str, lines: Mapping[str, int]
) -> tuple[tuple[ObjectKey, Verdict], ...]:
    if not isinstance(value, dict) or not value:
        raise InputError(
            f"expected: a mapping from Kind/name to the object's verdict is required, got "
            f"{value!r}",
            path=where,
        )
    expected: list[tuple[ObjectKey, Verdict]] = []
    for raw_key, raw_verdict in value.items():
        field = f"expected.{raw_key}"
        try:
            key = ObjectKey.parse(str(raw_key), lines.get(str(raw_key)))
        except ValueError as error:
            raise InputError(f"{field}: {error}", path=where) from error
        if any(str(key) == str(other) for other, _ in expected):
            raise InputError(f"{field}: named twice", path=where)
        expected.append((key, _verdict(raw_verdict, field, where)))
    return tuple(expected)


def _verdict(value: Any, field: str, where: str) -> Verdict:
    if not isinstance(value, dict):
        raise InputError(
            f"{field}: expected a mapping with allowed, violations, warnings, dryrun; got "
            f"{value!r}",
            path=where,
        )
    unknown = sorted(str(key) for key in value if key not in _VERDICT_FIELDS)
    if unknown:
        raise InputError(
            f"{field}.{unknown[0]}: unknown field (known: allowed, violations, warnings, dryrun)",
            path=where,
        )
    allowed = value.get("allowed")
    if not isinstance(allowed, bool):
        raise InputError(f"{field}.allowed: expected true or false, got {allowed!r}", path=where)
    lists: dict[str, tuple[str, ...]] = {}
    for name in _VERDICT_LISTS:
        items = value.get(name, [])
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise InputError(
                f"{field}.{name}: expected a list of rule ids (such as finops.cpu), got {items!r}",
                path=where,
            )
        lists[name] = tuple(sorted(items))
    if allowed == bool(lists["violations"]):
        raise InputError(
            f"{field}: allowed is {str(allowed).lower()} but violations is "
            f"{_show(list(lists['violations']))}; an object is allowed exactly when it has no "
            "violations",
            path=where,
        )
    return Verdict(allowed, lists["violations"], lists["warnings"], lists["dryrun"])


def run_cases(
    cases: Sequence[PolicyCase],
    *,
    opa_binary: Path,
    policy: PolicySource,
    data_files: Sequence[str | Path] = (),
    verification_key: VerificationKey | None = None,
) -> SuiteReport:
    """Decide every case's inputs as ``edgepolicy check`` would and compare the verdicts.

    Every case's inputs and data are read before OPA starts; cases whose data (the run's
    ``data_files`` merged with the case's own) is the same share one OPA.

    Raises:
        InputError: an input or data file is unreadable, a case's inputs hold no object, a
            key of ``expected`` names several objects, or a policy object is malformed in a
            way ``check`` refuses too.
        UsageError, OpaError: as :func:`~edgepolicy.checking.check_manifests`.
    """
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    loaded: list[tuple[PolicyCase, list[Manifest]]] = []
    groups: dict[str, list[int]] = {}  # the cases of each distinct data document
    data_by_group: dict[str, dict[str, Any]] = {}
    for position, case in enumerate(cases):
        manifests = load_paths(list(case.inputs))
        if not manifests:
            raise InputError(
                f"inputs: {', '.join(map(str, case.inputs))} hold no Kubernetes object",
                path=str(case.file),
            )
        loaded.append((case, manifests))
        data = load_data_files([*data_files, *case.data])
        key = json.dumps(data, sort_keys=True)
        data_by_group.setdefault(key, data)
        groups.setdefault(key, []).append(position)
    outcomes: dict[int, CaseOutcome] = {}
    for key, positions in groups.items():
        session = CheckSession(
            opa_binary=opa_binary,
            policy=policy,
            data=data_by_group[key],
            verification_key=verification_key,
        )
        with session:
            for position in positions:
                case, manifests = loaded[position]
                report = session.check(manifests, namespace=case.namespace)
                outcomes[position] = compare(case, report)
    return SuiteReport(
        tuple(outcomes[position] for position in range(len(cases))),
        started_at=started_at,
        seconds=time.perf_counter() - started,
    )


def compare(case: PolicyCase, report: CheckReport) -> CaseOutcome:
    """Pair every object of ``report`` with its expected verdict.

    Objects come in input order, then the expected ones missing from the inputs.

    Raises:
        InputError: a key of ``expected`` names more than one object (the message says to
            use ``Kind/namespace/name``).
    """
    matched: dict[int, tuple[ObjectKey, Verdict]] = {}
    missing: list[ObjectOutcome] = []
    for key, verdict in case.expected:
        positions = [i for i, result in enumerate(report.results) if key.matches(result)]
        if len(positions) > 1:
            places = ", ".join(_place(report.results[i]) for i in positions)
            raise InputError(
                f"expected.{key}: names {len(positions)} objects ({places}); name one "
                "(Kind/namespace/name)",
                path=str(case.file),
            )
        if not positions:
            missing.append(ObjectOutcome(str(key), verdict, None))
            continue
        position = positions[0]
        if position in matched:
            raise InputError(
                f"expected.{key}: names the same object as expected.{matched[position][0]}",
                path=str(case.file),
            )
        matched[position] = (key, verdict)
    outcomes = [
        ObjectOutcome(
            str(matched[i][0]) if i in matched else f"{result.kind}/{result.name}",
            matched[i][1] if i in matched else None,
            result,
        )
        for i, result in enumerate(report.results)
    ]
    return CaseOutcome(case, tuple(outcomes + missing), report)


def _place(result: CheckResult) -> str:
    return f"{result.file}:{result.line}" if result.line is not None else result.file


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _describe(verdict: Verdict) -> str:
    fields = verdict.to_dict()
    return ", ".join(f"{field} {_show(value)}" for field, value in fields.items())
