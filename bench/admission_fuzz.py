"""Fuzz the admission webhook with odd AdmissionReviews (Hypothesis) and check what it answers.

The cases start from real reviews (the examples' workloads, as CREATE, UPDATE and DELETE) and
mutate them: values replaced by any JSON value or deleted anywhere, unknown fields added, the
envelope changed (uid, userInfo, dryRun), resource limits given a type no quantity has, and byte
level damage (integers of more than 4,300 digits, numbers beyond a float's range, NaN, deep
nesting, truncation, flipped bytes, invalid UTF-8, UTF-16). Every answer must hold:

- never an HTTP 5xx: a 200 with an AdmissionReview, or a 400 (a 413 for an oversized body);
- the uid echoed, as a string, wherever the request gave one (a 200's ``response.uid``; a 400's
  ``uid`` when the uid was a short string, also in a body refused for a number out of range);
- a mutation that keeps the object's meaning (unknown fields, the envelope, limits that are no
  quantity, UTF-16) is decided (a 200: an HTTP error leaves it to the failure policy) and never
  turns a /validate denial of the unmutated review into an allowed answer;
- a body that is not strict JSON (huge numbers, NaN, too deep, invalid UTF-8, truncated) is never
  answered 200 (never decided on a guess of what it meant), and no bug hides behind the failure
  mode (a 200 denial saying "internal error");
- no gunicorn worker dies or is replaced (bench run only).

The unit suite runs these strategies against the Flask app (tests/unit/webhook/
test_webhook_fuzz.py); this script runs many more against a real `edgepolicy serve` (gunicorn,
TLS, real OPA) and prints the count of each property's failures, and exits 1 on any:

    .venv/bin/python bench/admission_fuzz.py [--cases 100000] [--clients 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# A placeholder swapped for raw JSON text that Python's encoder cannot write (huge numbers, NaN).
_RAW = "\x00edgepolicy-fuzz-raw\x00"
_LIMIT_NAMES = ("cpu", "memory", "nvidia.com/gpu")
# Strings that are no Kubernetes quantity (a limit given one must not count as no limit).
_NOT_QUANTITIES = ("", "abc", "4 cores", "0x10", "∞", "NaN", "1e999999999", "--1")


# ---- the seeds ---------------------------------------------------------------------------------


def seed_reviews() -> list[tuple[str, dict[str, Any]]]:
    """The reviews the mutations start from: every example workload as CREATE, the first as
    UPDATE (with itself as the old object) and DELETE."""
    from edgepolicy.input_builder import admission_review

    seeds: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((EXAMPLES / "workloads").glob("*.yaml")):
        with open(path, encoding="utf-8") as handle:
            documents = [doc for doc in yaml.safe_load_all(handle) if doc]
        for position, obj in enumerate(documents):
            label = f"{path.stem}#{position}"
            seeds.append((label, admission_review(obj, uid=f"uid-{label}")))
    first = seeds[1][1]["request"]["object"]
    seeds.append(("update", admission_review(first, operation="UPDATE", old_object=first)))
    seeds.append(("delete", admission_review(first, operation="DELETE")))
    return seeds


def policy_data() -> dict[str, Any]:
    """The local OPA's data: the examples' policies (read as `edgepolicy serve` reads them)."""
    from edgepolicy.webhook.opa_supervisor import local_data

    return local_data([EXAMPLES / "policies"], [])


# ---- the cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzCase:
    """One request: the seed it came from, the endpoint, the body, what the mutation was and
    whether it keeps the object's meaning (then a denied seed must stay denied)."""

    seed: int
    endpoint: str
    body: bytes
    mutation: str
    keeps_meaning: bool


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["\ud800", "a\udfffb", "\u0000", "\u202e", "x" * 300])
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) below ``node``, the root excluded."""
    found: list[tuple[Any, ...]] = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


def _encode(document: Any) -> bytes:
    return json.dumps(document).encode()  # ASCII: lone surrogates become valid JSON escapes


def _with_raw(document: Any, path: tuple[Any, ...], raw: bytes) -> bytes:
    """``document`` encoded with the value at ``path`` replaced by raw JSON text."""
    _parent(document, path)[path[-1]] = _RAW
    return _encode(document).replace(json.dumps(_RAW).encode(), raw, 1)


@st.composite
def fuzz_cases(draw: st.DrawFn, seeds: Sequence[dict[str, Any]]) -> FuzzCase:
    """A mutated review of one of ``seeds``, for /validate or /mutate."""
    index = draw(st.integers(min_value=0, max_value=len(seeds) - 1))
    endpoint = draw(st.sampled_from(["validate", "mutate"]))
    document = json.loads(json.dumps(seeds[index]))
    kind = draw(
        st.sampled_from(
            [
                "replace", "delete", "unknown-field", "envelope", "limit-type", "huge-int",
                "huge-float", "nan", "deep", "truncate", "flip", "invalid-utf8", "utf16",
            ]
        )
    )  # fmt: skip
    paths = _paths(document)
    keeps_meaning = kind in ("unknown-field", "envelope", "limit-type", "utf16")
    body: bytes
    if kind == "replace":
        path = draw(st.sampled_from(paths))
        _parent(document, path)[path[-1]] = draw(JSON_VALUES)
        body = _encode(document)
    elif kind == "delete":
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        del parent[path[-1]]
        body = _encode(document)
    elif kind == "unknown-field":
        holders = [()] + [path for path in paths if isinstance(_value(document, path), dict)]
        holder = _value(document, draw(st.sampled_from(holders)))
        holder["x-fuzz-" + draw(st.text(max_size=8))] = draw(JSON_VALUES)
        body = _encode(document)
    elif kind == "envelope":
        request = document["request"]
        field_name = draw(st.sampled_from(["uid", "userInfo", "dryRun", "options"]))
        if field_name == "uid":
            request["uid"] = draw(st.text(min_size=1, max_size=200))
        elif field_name == "userInfo":
            request["userInfo"] = {
                "username": draw(st.text(max_size=20)),
                "groups": draw(st.lists(st.text(max_size=10), max_size=3)),
                "extra": draw(st.dictionaries(st.text(max_size=5), st.lists(st.text(max_size=5)))),
            }
        elif field_name == "dryRun":
            request["dryRun"] = draw(st.booleans())
        else:
            request["options"] = draw(JSON_VALUES)
        body = _encode(document)
    elif kind == "limit-type":
        limits = [path for path in paths if path[-1] in _LIMIT_NAMES and "resources" in path]
        if limits:
            path = draw(st.sampled_from(limits))
            junk = (
                st.none()
                | st.booleans()
                | st.lists(JSON_VALUES, max_size=2)
                | st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=2)
                | st.sampled_from(_NOT_QUANTITIES)
            )
            _parent(document, path)[path[-1]] = draw(junk)
        body = _encode(document)
    elif kind in ("huge-int", "huge-float", "nan", "deep"):
        path = draw(st.sampled_from(paths))
        if kind == "huge-int":
            digits = draw(st.integers(min_value=4_301, max_value=20_000))
            raw = ("-" if draw(st.booleans()) else "") + "7" * digits
        elif kind == "huge-float":
            raw = draw(st.sampled_from(["1e400", "-1e999", "1" + "0" * 400 + ".5", "2E+309"]))
        elif kind == "nan":
            raw = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        else:
            depth = draw(st.integers(min_value=90, max_value=20_000))
            raw = "[" * depth + "]" * depth
        body = _with_raw(document, path, raw.encode())
    else:
        encoded = _encode(document)
        if kind == "truncate":
            body = encoded[: draw(st.integers(min_value=0, max_value=len(encoded) - 1))]
        elif kind == "flip":
            at = draw(st.integers(min_value=0, max_value=len(encoded) - 1))
            body = encoded[:at] + bytes([draw(st.integers(0, 255))]) + encoded[at + 1 :]
        elif kind == "invalid-utf8":
            at = encoded.index(b'"uid"') + 1
            body = (
                encoded[:at]
                + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
                + (encoded[at:])
            )
        else:
            body = json.dumps(document).encode("utf-16")
    return FuzzCase(index, endpoint, body, kind, keeps_meaning)


def _value(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


# ---- the checks --------------------------------------------------------------------------------


def _strict_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is beyond a float's range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _nesting(document: Any) -> int:
    """How many levels ``document`` nests (a scalar is 1), without recursion."""
    level, depth = [document], 0
    while level:
        depth += 1
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth


def strict_json(body: bytes) -> tuple[bool, Any]:
    """Read the body as strict JSON: (False, None) when it is not JSON, holds NaN or Infinity,
    an integer beyond Python's digit limit or a number beyond a float's, or nests deeper than
    the webhook reads before refusing it; else (True, the document)."""
    from edgepolicy.webhook.review_codec import MAX_OBJECT_DEPTH

    if _bracket_depth(body) > _DEEP:  # Python's parser would recurse to its limit (and a
        return False, None  # garbage collection there once overflowed the C stack)
    try:
        document = json.loads(body, parse_constant=_no_constant, parse_float=_strict_float)
    except (ValueError, RecursionError):
        return False, None
    if _nesting(document) > MAX_OBJECT_DEPTH + 2:
        return False, None
    return True, document


_DEEP = 500  # far above what the webhook reads, far below Python's recursion limit
_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', re.DOTALL)


def _bracket_depth(body: bytes) -> int:
    """The deepest nesting of brackets outside strings (a guess for a body that is no JSON)."""
    if body.count(b"[") + body.count(b"{") <= _DEEP:
        return 0
    depth = deepest = 0
    for match in _BRACKETS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _uid_of(document: Any) -> Any:
    request = document.get("request") if isinstance(document, dict) else None
    return request.get("uid") if isinstance(request, dict) else None


def sent_uid(body: bytes) -> Any:
    """The ``request.uid`` the body gives: read as JSON with its numbers left unconverted (a
    number no Python value holds is still JSON), None when it has none or the body is not
    JSON (NaN, invalid UTF-8, truncated, nesting deeper than Python reads)."""
    if _bracket_depth(body) > _DEEP:
        return None
    try:
        document = json.loads(
            body, parse_int=_ignored, parse_float=_ignored, parse_constant=_no_constant
        )
    except (ValueError, RecursionError):
        return None
    return _uid_of(document)


def _ignored(text: str) -> None:
    return None


def problems(case: FuzzCase, status: int, answer: Any, seed_allowed: bool | None) -> list[str]:
    """What is wrong with the webhook's answer to ``case`` (empty when nothing is).

    ``seed_allowed`` is /validate's verdict on the unmutated seed (None when not known).
    """
    if status >= 500:
        return [f"HTTP {status}"]
    if status not in (200, 400, 413):
        return [f"unexpected HTTP {status}"]
    if not isinstance(answer, dict):
        return [f"HTTP {status} without a JSON object"]
    readable, document = strict_json(case.body)
    uid = _uid_of(document)
    if status != 200:
        given = sent_uid(case.body)
        echoable = isinstance(given, str) and 0 < len(given) <= 100
        found = []
        if status == 400 and echoable and answer.get("uid") != given:
            found.append("400 without the request's uid")
        # The API server takes an HTTP error for no answer: its failure policy decides (and
        # with Ignore admits), so a review whose meaning was kept must get a decision.
        if case.keeps_meaning:
            found.append(f"HTTP {status} to a {case.mutation} mutation (no decision)")
        return found
    response = answer.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("allowed"), bool):
        return ["200 without an AdmissionResponse"]
    found = []
    if not readable:  # what JSON cannot carry was read as something: a decision on a guess
        found.append(f"200 to a {case.mutation} body that is not JSON")
    if not isinstance(response.get("uid"), str) or response["uid"] != uid:
        found.append("uid not echoed")
    status_field = response.get("status")
    message = str(status_field.get("message", "")) if isinstance(status_field, dict) else ""
    if "internal error" in message:  # a bug answered by the failure mode: a 5xx in disguise
        found.append("internal error answered by the failure mode")
    if must_stay_denied(case, seed_allowed) and response["allowed"]:
        found.append(f"allowed after a {case.mutation} mutation of a denied review")
    return found


def must_stay_denied(case: FuzzCase, seed_allowed: bool | None) -> bool:
    """Whether ``case`` must be denied: /validate denied its unmutated seed and the mutation
    keeps the object's meaning (/mutate never denies: denying is /validate's job)."""
    return seed_allowed is False and case.endpoint == "validate" and case.keeps_meaning


def _undecided(answer: Any) -> bool:
    response = answer.get("response") if isinstance(answer, dict) else None
    annotations = response.get("auditAnnotations") if isinstance(response, dict) else None
    decision = annotations.get("decision") if isinstance(annotations, dict) else None
    return decision in ("fail-closed", "fail-open")


# ---- the run against a real `edgepolicy serve` --------------------------------------------------


@dataclass
class Tally:
    """What the run saw."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    denials_kept: int = 0  # cases whose answer must be a denial: checked by `problems`
    undecided: int = 0  # 200s given by the failure mode (no decision within the deadline)
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def generate(seeds: Sequence[dict[str, Any]], cases: int, sink: Callable[[FuzzCase], None]) -> None:
    """Feed ``cases`` generated cases to ``sink`` (Hypothesis, generation phase only)."""

    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz_cases(seeds))
    def feed(case: FuzzCase) -> None:
        sink(case)

    feed()


def _worker_pids(master: int) -> set[int]:
    return {
        int(child)
        for task in Path(f"/proc/{master}/task").iterdir()
        for child in (task / "children").read_text().split()
    }


def main(argv: Sequence[str] | None = None) -> int:
    import urllib3

    from bench.admission import webhook_server
    from edgepolicy.library import library_path
    from edgepolicy.opa_binary import find_opa
    from edgepolicy.opa_process import OpaProcess

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)

    seeds = [review for _, review in seed_reviews()]
    with (
        tempfile.TemporaryDirectory(prefix="edgepolicy-fuzz-") as temporary,
        OpaProcess(find_opa(), paths=[library_path()], data=policy_data()) as opa,
        webhook_server(
            work := Path(temporary), opa.url, workers=args.workers, threads=args.threads
        ) as served,
    ):
        url, ca, process = served
        pool = urllib3.PoolManager(ca_certs=str(ca), retries=False, maxsize=args.clients)
        verdicts = []
        for review in seeds:
            answer = pool.request("POST", url + "/validate", body=json.dumps(review).encode())
            verdicts.append(bool(json.loads(answer.data)["response"]["allowed"]))
        workers_before = _worker_pids(process.pid)
        tally = Tally()
        pending: queue.Queue[FuzzCase | None] = queue.Queue(maxsize=1000)

        def client() -> None:
            while (case := pending.get()) is not None:
                try:
                    answer = pool.request(
                        "POST",
                        f"{url}/{case.endpoint}",
                        body=case.body,
                        headers={"Content-Type": "application/json"},
                        timeout=30.0,
                    )
                    status, data = answer.status, answer.data
                except urllib3.exceptions.HTTPError as error:
                    status, data = 599, repr(error).encode()
                try:
                    document = json.loads(data)
                except ValueError:
                    document = None
                found = problems(case, status, document, verdicts[case.seed])
                with tally.lock:
                    tally.sent += 1
                    tally.denials_kept += must_stay_denied(case, verdicts[case.seed])
                    tally.undecided += status == 200 and _undecided(document)
                    tally.statuses[status] += 1
                    for problem in found:
                        tally.problems[problem] += 1
                        if len(tally.examples) < 5:
                            tally.examples.append(f"{problem}: {case.mutation} {case.body[:300]!r}")

        clients = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in clients:
            thread.start()
        started = time.monotonic()
        generate(seeds, args.cases, pending.put)
        for _ in clients:
            pending.put(None)
        for thread in clients:
            thread.join()
        elapsed = time.monotonic() - started
        workers_after = _worker_pids(process.pid)
        log = (work / "serve.log").read_text(errors="replace")
    # gunicorn logs a worker that died or was killed at warning level or above.
    worker_errors = len(re.findall(r"WORKER TIMEOUT|Worker \(pid:\d+\) (?:was sent|exited)", log))
    restarts = len(workers_before - workers_after)
    print(f"cases sent: {tally.sent} in {elapsed:.0f} s ({tally.sent / elapsed:.0f}/s)")
    print("HTTP statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items())))
    print(f"HTTP 5xx: {sum(v for k, v in tally.statuses.items() if k >= 500)}")
    print(f"worker restarts: {restarts} (pids replaced); worker deaths logged: {worker_errors}")
    print(f"uid echo failures: {sum(v for k, v in tally.problems.items() if 'uid' in k)}")
    print(f"denied reviews allowed after a meaning-keeping mutation: "
          f"{sum(v for k, v in tally.problems.items() if k.startswith('allowed'))} "
          f"of {tally.denials_kept} such cases")  # fmt: skip
    undecided = sum(v for k, v in tally.problems.items() if k.endswith("(no decision)"))
    print(f"meaning-keeping mutations answered with an HTTP error (no decision): {undecided}")
    print(f"bodies that are not JSON answered 200: "
          f"{sum(v for k, v in tally.problems.items() if 'not JSON' in k)}")  # fmt: skip
    print(f"internal errors answered by the failure mode: "
          f"{sum(v for k, v in tally.problems.items() if 'internal error' in k)}")  # fmt: skip
    print(f"answered by the failure mode (no decision in time): {tally.undecided}")
    print(f"seeds: {len(verdicts)}, denied unmutated by /validate: {verdicts.count(False)}")
    for problem, count in sorted(tally.problems.items()):
        print(f"  {problem}: {count}")
    for example in tally.examples:
        print(f"  e.g. {example}")
    return 1 if tally.problems or restarts or worker_errors else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
