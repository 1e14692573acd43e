"""`edgepolicy serve` for real: gunicorn over TLS, a real OPA with the shipped Rego library, real
HTTPS requests carrying AdmissionReviews."""

from __future__ import annotations

import base64
import contextlib
import copy
import http.client
import json
import os
import re
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from webhook_support import (
    ServeProcess,
    ServerCert,
    TestCA,
    free_port,
    https_pool,
    post_review,
    tls_opa,
)

from edgepolicy.input_builder import admission_review
from edgepolicy.opa_process import OpaProcess

pytestmark = pytest.mark.integration

ASSETS = Path(__file__).resolve().parent / "assets" / "webhook"
POLICY = "ai/team-budget"


def deployment(
    name: str,
    *,
    cpu: str = "1",
    memory: str = "1Gi",
    replicas: int | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment in namespace ai; by default matched by the team budget and within it."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "inference"}},
        "template": {
            "metadata": {"labels": labels or {"app": "inference"}},
            "spec": {
                "containers": [
                    {
                        "name": "server",
                        "image": "registry.example.com/ai/server:1.0",
                        "resources": {"limits": {"cpu": cpu, "memory": memory}},
                    }
                ]
            },
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if annotations:
        spec["template"]["metadata"]["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ai"},
        "spec": spec,
    }


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def apply_patch(obj: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply an RFC 6902 JSONPatch of add/replace/remove operations on object members."""
    result = copy.deepcopy(obj)
    for operation in patch:
        *parents, last = _pointer(operation["path"])
        node = result
        for part in parents:
            node = node[part]
        if operation["op"] in ("add", "replace"):
            if operation["op"] == "replace":
                assert last in node, f"replace of a missing member: {operation}"
            node[last] = copy.deepcopy(operation["value"])
        elif operation["op"] == "remove":
            del node[last]
        else:
            raise AssertionError(f"unexpected JSONPatch operation {operation}")
    return result


def start_serve(
    tmp_path: Path, ca: TestCA, cert: ServerCert, *args: str, name: str = "serve"
) -> ServeProcess:
    server = ServeProcess(
        ["--tls-cert", str(cert.cert_file), "--tls-key", str(cert.key_file), *args],
        log_file=tmp_path / f"{name}.log",
        port=free_port(),
    )
    server.wait_healthy(https_pool(ca))
    return server


@pytest.fixture(scope="module")
def serve(
    test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory, opa_binary: Path
) -> Iterator[ServeProcess]:
    """One webhook with its own local OPA: the shipped library, the team budget, the settings."""
    directory = tmp_path_factory.mktemp("serve")
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert = ServerCert(cert_file, key_file, test_ca.issue(cert_file, key_file))
    server = start_serve(
        directory,
        test_ca,
        cert,
        "--opa",
        str(opa_binary),
        "--policies",
        str(ASSETS / "policies"),
        "--data",
        str(ASSETS / "settings.yaml"),
        "--workers",
        "2",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(test_ca: TestCA) -> urllib3.PoolManager:
    return https_pool(test_ca)


def _answer(
    endpoint: str, client: urllib3.PoolManager, server: ServeProcess, review: dict[str, Any]
) -> dict[str, Any]:
    """POST ``review`` to ``endpoint``; return the AdmissionResponse (HTTP 200, uid echoed)."""
    status, body = post_review(client, server.url + endpoint, review)
    assert status == 200, body
    assert body["response"]["uid"] == review["request"]["uid"]
    response: dict[str, Any] = body["response"]
    return response


def validate(
    client: urllib3.PoolManager, server: ServeProcess, review: dict[str, Any]
) -> dict[str, Any]:
    return _answer("/validate", client, server, review)


def mutate(
    client: urllib3.PoolManager, server: ServeProcess, review: dict[str, Any]
) -> dict[str, Any]:
    return _answer("/mutate", client, server, review)


def test_a_workload_within_budget_is_allowed(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    response = validate(client, serve, admission_review(deployment("small", replicas=2)))
    assert response["allowed"] is True
    assert "status" not in response and "warnings" not in response
    assert response["auditAnnotations"] == {"decision": "allowed", "policies": POLICY}


def test_an_over_budget_workload_is_denied_with_every_violation(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    big = deployment("big", cpu="4", memory="16Gi", replicas=3)  # 12 cores, 48Gi
    response = validate(client, serve, admission_review(big))
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    assert message.startswith("edgepolicy denied the request: 2 violations")
    lines = message.splitlines()
    assert lines[1].startswith("- finops.cpu: ") and POLICY in lines[1]
    assert lines[2].startswith("- finops.memory: ") and POLICY in lines[2]
    assert "maxCPUCores 8" in message
    assert response["auditAnnotations"]["rules"] == "finops.cpu,finops.memory"


def test_update_is_evaluated_with_the_old_object(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    old = deployment("grown", cpu="1")
    new = deployment("grown", cpu="6")  # 3 pods (autoScale.maxReplicas) x 6 cores
    review = admission_review(new, operation="UPDATE", old_object=old)
    response = validate(client, serve, review)
    assert response["allowed"] is False
    assert "- finops.cpu: " in response["status"]["message"]
    shrunk = admission_review(old, operation="UPDATE", old_object=new)
    assert validate(client, serve, shrunk)["allowed"] is True


def test_warn_rules_become_response_warnings(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    response = validate(client, serve, admission_review(deployment("wide", replicas=5)))
    assert response["allowed"] is True
    (warning,) = response["warnings"]
    assert warning.startswith("finops.replicas: ") and POLICY in warning
    assert "set spec.replicas to at most 3" in warning


def test_dryrun_rules_are_only_logged_and_counted(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    lazy = deployment("lazy", annotations={"finops.apexlogic.com/idle-shutdown-after": "45m"})
    review = admission_review(lazy)
    response = validate(client, serve, review)
    assert response["allowed"] is True
    assert "warnings" not in response and "status" not in response
    assert response["auditAnnotations"]["rules"] == "finops.idle-shutdown"
    line = _log_line(serve, review["request"]["uid"], "validate")
    assert line["dryrun"] == ["finops.idle-shutdown"]
    assert 'edgepolicy_decisions_total{action="dryrun",rule="finops.idle-shutdown"}' in (
        _metrics(client, serve)
    )


def test_mutation_patches_once_and_then_changes_nothing(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    original = deployment("fresh")
    response = mutate(client, serve, admission_review(original))
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    patched = apply_patch(original, patch)
    assert patched["metadata"]["labels"]["finops.apexlogic.com/policy"] == "team-budget"
    annotations = patched["spec"]["template"]["metadata"]["annotations"]
    assert annotations["finops.apexlogic.com/idle-shutdown-after"] == "30m"
    second = mutate(client, serve, admission_review(patched))
    assert "patch" not in second and "patchType" not in second
    # The validator agrees with what the mutator produced.
    assert validate(client, serve, admission_review(patched))["allowed"] is True


def test_unmatched_objects_are_neither_patched_nor_denied(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    other = deployment("other", cpu="64", labels={"app": "web"})
    assert validate(client, serve, admission_review(other))["allowed"] is True
    assert "patch" not in mutate(client, serve, admission_review(other))


def test_mutate_never_denies(serve: ServeProcess, client: urllib3.PoolManager) -> None:
    big = admission_review(deployment("huge", cpu="32"))
    response = mutate(client, serve, big)
    assert response["allowed"] is True and "status" not in response


@pytest.mark.parametrize("endpoint", ["/validate", "/mutate"])
def test_delete_is_allowed_untouched(
    serve: ServeProcess, client: urllib3.PoolManager, endpoint: str
) -> None:
    review = admission_review(deployment("gone", cpu="64"), operation="DELETE")
    status, body = post_review(client, serve.url + endpoint, review)
    assert status == 200
    assert body["response"] == {"uid": review["request"]["uid"], "allowed": True}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"not json", "not valid JSON"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', "v1beta1"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "'request'"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",'
            b' "request": {"operation": "CREATE"}}',
            "request.uid",
        ),
    ],
)
def test_malformed_reviews_get_400(
    serve: ServeProcess, client: urllib3.PoolManager, raw: bytes, expected: str
) -> None:
    status, body = post_review(client, serve.url + "/validate", None, raw=raw)
    assert status == 400
    assert expected in body["error"]
    assert "Traceback" not in serve.log()


def test_a_400_is_small_logged_and_counted_whatever_the_body_held(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    review = admission_review(deployment("oversized-field"))
    review["apiVersion"] = "a" * 2_000_000
    review["request"]["uid"] = "uid-of-a-bad-review"
    review["request"]["object"]["metadata"]["annotations"] = {"token": "s3cr3t-in-a-bad-review"}
    series = 'edgepolicy_rejected_requests_total{reason="not-admission-review"}'
    before = _sample(_metrics(client, serve), series)
    response = client.request("POST", serve.url + "/validate", body=json.dumps(review).encode())
    assert response.status == 400
    assert len(response.data) < 400
    assert json.loads(response.data)["uid"] == "uid-of-a-bad-review"
    line = _log_line(serve, "uid-of-a-bad-review", "validate")
    assert (line["event"], line["status"]) == ("rejected", 400)
    assert line["reason"] == "not-admission-review"
    assert "s3cr3t-in-a-bad-review" not in serve.log() and "a" * 200 not in serve.log()
    assert _sample(_metrics(client, serve), series) == before + 1


def test_one_json_log_line_per_decision_without_secrets(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    secret = deployment("with-secret")
    container = secret["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "TOKEN", "value": "s3cr3t-value-123"}]
    review = admission_review(secret, username="alice@example.com")
    validate(client, serve, review)
    line = _log_line(serve, review["request"]["uid"], "validate")
    assert line["kind"] == "Deployment"
    assert (line["namespace"], line["name"], line["operation"]) == ("ai", "with-secret", "CREATE")
    assert line["user"] == "alice@example.com"
    assert line["allowed"] is True
    assert line["deny"] == []
    assert line["duration_ms"] > 0
    assert "s3cr3t-value-123" not in serve.log()


def test_health_readiness_and_metrics(serve: ServeProcess, client: urllib3.PoolManager) -> None:
    assert client.request("GET", serve.url + "/healthz").status == 200
    ready = client.request("GET", serve.url + "/readyz")
    assert ready.status == 200, ready.data
    for _ in range(4):  # spread over both workers
        validate(client, serve, admission_review(deployment("counted", cpu="64")))
    text = _metrics(client, serve)
    denied = _sample(
        text,
        'edgepolicy_admission_requests_total{allowed="false",endpoint="validate",operation="CREATE"}',
    )
    assert denied >= 4
    assert _sample(text, 'edgepolicy_decisions_total{action="deny",rule="finops.cpu"}') >= 4
    assert _sample(text, 'edgepolicy_admission_duration_seconds_count{endpoint="validate"}') >= 4
    assert "edgepolicy_opa_errors_total" in text


def test_the_local_opa_is_restarted_when_it_dies(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    (opa_pid,) = _opa_children(serve.process.pid)
    os.kill(opa_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        restarted = _opa_children(serve.process.pid)
        is_new = bool(restarted) and restarted != [opa_pid]
        if is_new and client.request("GET", serve.url + "/readyz").status == 200:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"OPA was not restarted:\n{serve.log()}")
    response = validate(client, serve, admission_review(deployment("after", cpu="64")))
    assert response["allowed"] is False


def test_a_hung_local_opa_is_killed_and_replaced(
    serve: ServeProcess, client: urllib3.PoolManager
) -> None:
    # A stopped OPA keeps its port and accepts connections but never answers. It is killed
    # (a SIGTERM grace period would be wasted on a process that cannot run) and replaced;
    # bench/opa_hang.py measures how fast.
    _wait_for_supervisor(serve)
    (hung,) = _opa_children(serve.process.pid)
    os.kill(hung, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5  # generous: well under 2 s is needed (it took 8 before)
        while time.monotonic() < deadline:
            replaced = _opa_children(serve.process.pid)
            is_new = bool(replaced) and hung not in replaced and not _alive(hung)
            if is_new and client.request("GET", serve.url + "/readyz").status == 200:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the hung OPA was not replaced:\n{serve.log()}")
        response = validate(client, serve, admission_review(deployment("after-hang", cpu="64")))
        assert response["allowed"] is False
        assert "- finops.cpu: " in response["status"]["message"]  # the policy, not fail-closed
        assert "cannot answer (stopped); replacing it" in serve.log()
    finally:
        if _alive(hung):
            os.kill(hung, signal.SIGCONT)


# ---- failure modes, against an OPA the test controls ------------------------------------------


@pytest.fixture
def own_opa(opa_binary: Path) -> Iterator[OpaProcess]:
    """A real OPA with the shipped library and the team budget, outside serve's control."""
    from edgepolicy.webhook.opa_supervisor import local_data

    from edgepolicy.library import library_path

    data = local_data([ASSETS / "policies"], [])
    with OpaProcess(opa_binary, paths=[library_path()], data=data) as opa:
        yield opa


def test_an_https_opa_with_a_private_ca_trusted_by_ssl_cert_file_decides(
    tmp_path: Path,
    test_ca: TestCA,
    server_cert: ServerCert,
    opa_binary: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edgepolicy.webhook.opa_supervisor import local_data

    from edgepolicy.library import library_path, opa_arguments

    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(local_data([ASSETS / "policies"], [])), encoding="utf-8")
    arguments = [*opa_arguments(library_path()), str(data_file)]
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.cert_file))
    with tls_opa(opa_binary, server_cert, arguments, tmp_path / "opa.log") as port:
        flags = ["--opa-url", f"https://localhost:{port}", "--workers", "1"]
        client = https_pool(test_ca)
        server = start_serve(tmp_path, test_ca, server_cert, *flags)
        try:
            assert client.request("GET", server.url + "/readyz").status == 200
            small = validate(client, server, admission_review(deployment("small", replicas=2)))
            assert small["allowed"] is True
            big = deployment("big", cpu="4", memory="16Gi", replicas=3)
            assert validate(client, server, admission_review(big))["status"]["code"] == 403
        finally:
            server.stop()
        monkeypatch.delenv("SSL_CERT_FILE")  # the private CA is not trusted now
        server = start_serve(tmp_path, test_ca, server_cert, *flags, name="untrusting")
        try:
            assert client.request("GET", server.url + "/readyz").status == 503
            refused = validate(client, server, admission_review(deployment("small", replicas=2)))
        finally:
            server.stop()
    assert refused["allowed"] is False and refused["status"]["code"] == 503
    assert (
        f"policy engine unavailable: OPA at https://localhost:{port} is unavailable: its TLS "
        "certificate failed verification: unable to get local issuer certificate"
    ) in refused["status"]["message"]


@pytest.mark.parametrize("fail_open", [False, True])
def test_opa_down_fails_closed_or_open(
    tmp_path: Path,
    test_ca: TestCA,
    server_cert: ServerCert,
    own_opa: OpaProcess,
    fail_open: bool,
) -> None:
    flags = ["--opa-url", own_opa.url, "--workers", "1", *(["--fail-open"] if fail_open else [])]
    server = start_serve(tmp_path, test_ca, server_cert, *flags)
    client = https_pool(test_ca)
    try:
        review = admission_review(deployment("during-outage"))
        assert validate(client, server, review)["allowed"] is True
        own_opa.stop()
        assert client.request("GET", server.url + "/readyz").status == 503
        response = validate(client, server, admission_review(deployment("during-outage")))
        if fail_open:
            assert response["allowed"] is True
            assert "admitted unchecked" in response["warnings"][0]
        else:
            assert response["allowed"] is False
            assert response["status"]["code"] == 503
            assert "policy engine unavailable" in response["status"]["message"]
        deleted = admission_review(deployment("x"), operation="DELETE")
        assert validate(client, server, deleted)["allowed"] is True
        text = _metrics(client, server)
        assert _sample(text, 'edgepolicy_opa_errors_total{reason="unavailable"}') >= 1
    finally:
        server.stop()


def test_a_stalled_opa_is_answered_within_the_deadline(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url, "--timeout", "1")
    client = https_pool(test_ca)
    assert own_opa.pid is not None
    try:
        validate(client, server, admission_review(deployment("warm-up")))
        os.kill(own_opa.pid, signal.SIGSTOP)  # accepts connections, never answers
        started = time.monotonic()
        response = validate(client, server, admission_review(deployment("stalled")))
        elapsed = time.monotonic() - started
        assert response["allowed"] is False
        assert "policy engine unavailable" in response["status"]["message"]
        assert elapsed < 1.0 + 0.3, f"answered after {elapsed:.2f}s"
    finally:
        os.kill(own_opa.pid, signal.SIGCONT)
        server.stop()


def test_requests_queued_behind_a_stalled_opa_are_still_answered_in_time(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # One decision slot: requests queue behind each other while OPA never answers.
    server = start_serve(
        tmp_path,
        test_ca,
        server_cert,
        *("--opa-url", own_opa.url, "--timeout", "1", "--workers", "1", "--threads", "1"),
    )
    assert own_opa.pid is not None
    answers: list[tuple[float, dict[str, Any]]] = []

    def ask() -> None:
        pool = https_pool(test_ca)
        started = time.monotonic()
        _, body = post_review(
            pool, server.url + "/validate", admission_review(deployment("queued"))
        )
        answers.append((time.monotonic() - started, body["response"]))

    try:
        validate(https_pool(test_ca), server, admission_review(deployment("warm-up")))
        os.kill(own_opa.pid, signal.SIGSTOP)
        askers = [threading.Thread(target=ask) for _ in range(6)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join()
        assert len(answers) == 6
        for elapsed, response in answers:
            assert elapsed < 1.0 + 0.3, f"answered after {elapsed:.2f}s"
            assert response["allowed"] is False and response["status"]["code"] == 503
        messages = " ".join(response["status"]["message"] for _, response in answers)
        assert "overloaded" in messages and "policy engine unavailable" in messages
    finally:
        os.kill(own_opa.pid, signal.SIGCONT)
        server.stop()


# ---- TLS ---------------------------------------------------------------------------------------


def _served_serial(ca: TestCA, port: int) -> int:
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return int(tls.getpeercert()["serialNumber"], 16)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_is_refused(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url)
    try:
        context = ssl.create_default_context(cafile=str(test_ca.cert_file))
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client would speak TLS 1.1
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            pytest.raises(ssl.SSLError),
        ):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        server.stop()


def test_a_rotated_certificate_is_served_without_dropping_requests(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url, "--workers", "2")
    client = https_pool(test_ca)
    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def keep_asking() -> None:
        nonlocal answered
        pool = https_pool(test_ca)
        while not stop.is_set():
            try:
                status, body = post_review(
                    pool, server.url + "/validate", admission_review(deployment("steady"))
                )
                if status != 200 or body["response"]["allowed"] is not True:
                    failures.append(f"{status} {body}")
                answered += 1
            except urllib3.exceptions.HTTPError as error:
                failures.append(repr(error))

    try:
        before = _served_serial(test_ca, server.port)
        assert before == server_cert.cert.serial_number
        # A kept-alive connection opened before the rotation.
        kept = https_pool(test_ca)
        assert kept.request("GET", server.url + "/healthz").status == 200
        asker = threading.Thread(target=keep_asking)
        asker.start()
        time.sleep(0.5)
        rotated = test_ca.issue(server_cert.cert_file, server_cert.key_file)
        deadline = time.monotonic() + 10
        while _served_serial(test_ca, server.port) != rotated.serial_number:
            assert time.monotonic() < deadline, "the rotated certificate was never served"
            time.sleep(0.2)
        # Every worker serves it (each reloads on its own, within its 1 s check interval of the
        # first one): ask a few new connections.
        time.sleep(1.5)
        serials = {_served_serial(test_ca, server.port) for _ in range(8)}
        assert serials == {rotated.serial_number}
        time.sleep(0.5)
        stop.set()
        asker.join()
        assert kept.request("GET", server.url + "/healthz").status == 200
        assert failures == []
        assert answered > 0
        assert client.request("GET", server.url + "/readyz").status == 200
    finally:
        stop.set()
        server.stop()


# ---- helpers -----------------------------------------------------------------------------------


def _metrics(client: urllib3.PoolManager, server: ServeProcess) -> str:
    response = client.request("GET", server.url + "/metrics")
    assert response.status == 200
    return str(response.data.decode())


def _sample(text: str, series: str) -> Decimal:
    match = re.search("^" + re.escape(series) + r" ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{series} not in metrics:\n{text}"
    return Decimal(match.group(1))


def _log_line(server: ServeProcess, uid: str, endpoint: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for raw in server.log().splitlines():
            if raw.startswith("{") and f'"uid":"{uid}"' in raw:
                entry: dict[str, Any] = json.loads(raw)
                if entry["endpoint"] == endpoint:
                    return entry
        time.sleep(0.1)
    pytest.fail(f"no decision line for {uid}:\n{server.log()}")


def _wait_for_supervisor(serve: ServeProcess, timeout: float = 30.0) -> None:
    """Wait until every replacement the supervisor began (an earlier test's) has finished: an
    OPA still starting is not yet watched, so stopping it would test the start-up timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = serve.log()
        if log.count("; replacing it") == log.count("local OPA restarted at"):
            return
        time.sleep(0.1)
    pytest.fail(f"the supervisor did not finish replacing OPA:\n{serve.log()}")


def _opa_children(pid: int) -> list[int]:
    """The OPA processes started by ``pid`` (the gunicorn master)."""
    found = []
    for child in _children(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if cmdline and cmdline[0].endswith(b"opa") and b"run" in cmdline:
            found.append(child)
    return found


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie waiting for its new parent is dead


def test_the_local_opa_dies_with_a_killed_serve(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, opa_binary: Path
) -> None:
    server = start_serve(
        tmp_path,
        test_ca,
        server_cert,
        *("--opa", str(opa_binary), "--policies", str(ASSETS / "policies"), "--workers", "1"),
    )
    try:
        (opa,) = [
            pid
            for pid in _children(server.process.pid)
            if Path(f"/proc/{pid}/exe").resolve() == opa_binary.resolve()
        ]
        os.kill(server.process.pid, signal.SIGKILL)  # no chance to stop OPA itself
        server.process.wait()
        deadline = time.monotonic() + 10
        while _alive(opa) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(opa), "the local OPA outlived its killed serve"
    finally:
        server.stop()


def test_idle_tls_connections_do_not_hold_the_workers(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # Clients such as Go's HTTP transport (the API server's) keep spare connections open after
    # the TLS handshake without sending a request on them; they must not delay other clients.
    flags = ["--opa-url", own_opa.url, "--workers", "1", "--threads", "2"]
    server = start_serve(tmp_path, test_ca, server_cert, *flags)
    context = ssl.create_default_context(cafile=str(test_ca.cert_file))
    idle = []
    try:
        for _ in range(4):
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            idle.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
        client = https_pool(test_ca, timeout=5.0)
        started = time.monotonic()
        response = validate(client, server, admission_review(deployment("behind-idle")))
        assert response["allowed"] is True
        assert time.monotonic() - started < 3.0
    finally:
        for connection in idle:
            connection.close()
        server.stop()


def _closed_after(connection: socket.socket | ssl.SSLSocket, limit: float) -> tuple[float, bytes]:
    """Wait (at most ``limit`` s) for the server to close ``connection``; return how long it
    took and what it sent meanwhile."""
    connection.settimeout(limit)
    started = time.monotonic()
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return time.monotonic() - started, received


def test_stalled_handshakes_headers_and_bodies_are_closed_after_their_timeouts(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    timeouts = ("--handshake-timeout", "0.5", "--header-timeout", "0.7", "--body-timeout", "0.9")
    flags = ["--opa-url", own_opa.url, "--workers", "1", *timeouts]
    server = start_serve(tmp_path, test_ca, server_cert, *flags)
    context = ssl.create_default_context(cafile=str(test_ca.cert_file))
    try:
        hello = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        hello.sendall(b"\x16\x03\x01")  # the first bytes of a TLS hello, then nothing
        headers = context.wrap_socket(
            socket.create_connection(("127.0.0.1", server.port), timeout=5),
            server_hostname="127.0.0.1",
        )
        headers.sendall(b"POST /validate HTTP/1.1\r\nHost: webhook\r\n")  # no end of headers
        body = context.wrap_socket(
            socket.create_connection(("127.0.0.1", server.port), timeout=5),
            server_hostname="127.0.0.1",
        )
        body.sendall(b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: 100\r\n\r\n{")
        # Meanwhile, other clients are served at once by the same (only) worker.
        started = time.monotonic()
        response = validate(https_pool(test_ca), server, admission_review(deployment("beside")))
        assert response["allowed"] is True and time.monotonic() - started < 1.0
        closed = {
            name: _closed_after(connection, 5.0)
            for name, connection in (("hello", hello), ("headers", headers), ("body", body))
        }
        # each closed after its own timeout (measured from about now, so less than it)
        assert closed["hello"][0] < 0.5 + 0.5 and closed["hello"][1] == b""
        for name, limit in (("headers", 0.7), ("body", 0.9)):
            elapsed, received = closed[name]
            assert elapsed < limit + 0.5, f"{name} closed after {elapsed:.2f}s"
            assert received.startswith(b"HTTP/1.1 408 Request Timeout"), received
    finally:
        server.stop()


def test_a_body_declared_too_large_is_refused_without_waiting_for_it(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url)
    connection = _tls_connection(server, test_ca)
    try:  # 9 MB announced (the limit is 8 MiB), none of it sent
        connection.sendall(
            b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: 9000000\r\n\r\n"
        )
        elapsed, received = _closed_after(connection, 4.0)
        assert received.startswith(b"HTTP/1.1 413 "), received
        assert elapsed < 2.0  # answered and closed at once, not after the body timeout
    finally:
        connection.close()
        server.stop()


@pytest.mark.parametrize(
    "header",
    [
        "SCRIPT_NAME: /elsewhere",  # gunicorn answered 500 (a "configuration problem")
        "SCRIPT_NAME: /valid",  # /validate would have become "ate": 404
        "X-Forwarded-Proto: http\r\nX-Forwarded-SSL: on",  # gunicorn answered 400
    ],
)
def test_forwarding_headers_are_ignored_even_from_loopback(
    serve: ServeProcess, test_ca: TestCA, header: str
) -> None:
    # No proxy stands in front of the webhook (it terminates TLS itself), so no client is
    # trusted to set them: not even one on loopback (a sidecar proxy passing on what it got).
    review = json.dumps(admission_review(deployment("forwarded", cpu="64"), uid="fwd-uid"))
    connection = _tls_connection(serve, test_ca)
    try:
        connection.sendall(
            f"POST /validate HTTP/1.1\r\nHost: webhook\r\n{header}\r\n"
            f"Content-Length: {len(review)}\r\n\r\n{review}".encode()
        )
        response = _review_answer(connection)
    finally:
        connection.close()
    assert response["uid"] == "fwd-uid"
    assert response["allowed"] is False and "- finops.cpu: " in response["status"]["message"]


@pytest.mark.parametrize(
    "request_head",
    [
        "POST /validate HTTP/1.1\r\nHost: webhook\r\nno colon here\r\n",  # 400
        "POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: 1_0\r\n",  # 400
        f"POST /{'v' * 10_000} HTTP/1.1\r\nHost: webhook\r\n",  # 414
    ],
)
def test_http_gunicorn_cannot_read_is_logged_and_counted(
    serve: ServeProcess, client: urllib3.PoolManager, test_ca: TestCA, request_head: str
) -> None:
    series = 'edgepolicy_rejected_requests_total{reason="malformed-http"}'
    before = _sample(_metrics(client, serve), series)
    connection = _tls_connection(serve, test_ca)
    try:
        connection.sendall(f"{request_head}\r\n".encode())
        answer = connection.recv(4096)
    finally:
        connection.close()
    assert answer.split(b" ", 2)[1] in (b"400", b"414"), answer[:200]
    assert _sample(_metrics(client, serve), series) == before + 1
    assert "Invalid request from ip=" in serve.log()


def _tls_connection(server: ServeProcess, ca: TestCA) -> ssl.SSLSocket:
    """A raw TLS connection to ``server`` (for requests the HTTP clients would not send)."""
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    return context.wrap_socket(
        socket.create_connection(("127.0.0.1", server.port), timeout=5),
        server_hostname="127.0.0.1",
    )


def _review_answer(connection: ssl.SSLSocket) -> dict[str, Any]:
    """Read one HTTP answer from ``connection``: the AdmissionReview's response."""
    answer = http.client.HTTPResponse(connection)  # type: ignore[arg-type]
    answer.begin()
    return json.loads(answer.read())["response"]  # type: ignore[no-any-return]


def test_a_slow_body_counts_the_deadline_from_the_request_s_first_byte(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # With --timeout 1, OPA must be asked within 0.45 s of the request's first byte; a body
    # that takes 0.6 s leaves no time: the failure mode answers at once, OPA is never asked
    # (it is stopped, so asking it would answer "unavailable" only after 0.45 s more).
    flags = ["--opa-url", own_opa.url, "--timeout", "1", "--workers", "1"]
    server = start_serve(tmp_path, test_ca, server_cert, *flags)
    body = json.dumps(admission_review(deployment("slow-body"))).encode()
    assert own_opa.pid is not None
    connection = _tls_connection(server, test_ca)
    try:
        os.kill(own_opa.pid, signal.SIGSTOP)
        connection.sendall(
            b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
        )
        time.sleep(0.6)
        connection.sendall(body[10:])
        sent = time.monotonic()
        response = _review_answer(connection)
        assert time.monotonic() - sent < 0.3
        assert response["allowed"] is False and "overloaded" in response["status"]["message"]
    finally:
        os.kill(own_opa.pid, signal.SIGCONT)
        connection.close()
        server.stop()


def test_the_deadline_counts_from_when_the_bytes_arrived_not_when_the_worker_noticed(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # The only worker is stopped while a whole request arrives: when it runs again, 0.6 s
    # have passed of the 1 s deadline, more than OPA may still take (0.45 s): the failure mode
    # answers at once. Stamped when noticed, the request would be decided (OPA runs).
    flags = ["--opa-url", own_opa.url, "--timeout", "1", "--workers", "1"]
    server = start_serve(tmp_path, test_ca, server_cert, *flags)
    body = json.dumps(admission_review(deployment("waited"))).encode()
    connection = _tls_connection(server, test_ca)
    request = (
        b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    (worker,) = _children(server.process.pid)  # OPA is not serve's own here

    try:
        connection.sendall(request)
        assert (_review_answer(connection).get("status") or {}).get("code") != 503  # decided
        os.kill(worker, signal.SIGSTOP)
        try:
            connection.sendall(request)
            time.sleep(0.6)
        finally:
            os.kill(worker, signal.SIGCONT)
        response = _review_answer(connection)
        assert response["allowed"] is False and "overloaded" in response["status"]["message"]
    finally:
        connection.close()
        server.stop()


def test_a_client_that_does_not_read_its_answers_is_closed_after_the_write_timeout(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # The client asks for /metrics 3,000 times in a row (6 MB of answers, more than the socket
    # buffers hold) and reads nothing: the worker cannot send, and after --write-timeout 1 it
    # closes the connection. The client, reading late, gets part of the answers and then the
    # end. Without the timeout every answer would come and the connection stay open, idle.
    flags = ["--opa-url", own_opa.url, "--workers", "1", "--write-timeout", "1"]
    server = start_serve(tmp_path, test_ca, server_cert, *flags)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: small window
    raw.settimeout(5)
    raw.connect(("127.0.0.1", server.port))
    context = ssl.create_default_context(cafile=str(test_ca.cert_file))
    connection = context.wrap_socket(raw, server_hostname="127.0.0.1")
    asked = 3000
    try:
        connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: webhook\r\n\r\n" * asked)
        time.sleep(3)
        received, ended = b"", False
        try:
            while chunk := connection.recv(1 << 16):
                received += chunk
            ended = True
        except ConnectionResetError:
            ended = True
        except TimeoutError:
            pass  # still open after 5 s of silence: nobody closed it
        answered = received.count(b"HTTP/1.1 200 ")
        assert ended, f"the connection stayed open after {answered} answers"
        assert 0 < answered < asked
    finally:
        connection.close()
        server.stop()


def test_a_stopping_worker_closes_idle_kept_alive_connections_at_once(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # A kept-alive connection waiting for its next request has nothing to finish: on TERM
    # it is closed at once and serve exits in about a second, not after the 10 s grace.
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url, "--workers", "1")
    connection = _tls_connection(server, test_ca)
    try:
        connection.sendall(_validate_request("kept-alive"))
        assert _review_answer(connection)["uid"]
        stopped = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        assert connection.recv(1) == b""  # closed by the worker (the socket's timeout is 5 s)
        assert server.process.wait(30) == 0
        assert time.monotonic() - stopped < 5  # the grace period is 10 s
    finally:
        connection.close()
        server.stop()


# ---- refusing new connections under overload ---------------------------------------------------

REFUSED_SERIES = "edgepolicy_webhook_refused_connections_total"
CLOSED_SERIES = "edgepolicy_webhook_listener_closed_seconds_total"


def _validate_request(name: str) -> bytes:
    body = json.dumps(admission_review(deployment(name))).encode()
    return (
        b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def _wait_for_unaccepted_bytes(port: int) -> None:
    """Wait until a connection to local ``port`` holds bytes nobody has read (its receive queue
    in /proc/net/tcp is not empty): a client's first bytes have arrived."""
    local = f"0100007F:{port:04X}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] == local and int(fields[4].split(":")[1], 16) > 0:
                return
        time.sleep(0.01)
    raise AssertionError(f"no bytes arrived for port {port}")


def _handshake_error(server: ServeProcess, ca: TestCA) -> Exception | None:
    """Open a TLS connection; return what stopped its handshake (None: it completed)."""
    try:
        _tls_connection(server, ca).close()
    except OSError as error:  # ssl.SSLError too
        return error
    return None


def _listeners(port: int) -> dict[int, str]:
    """The listening TCP sockets of local ``port`` (inode -> owner: a pid), from /proc."""
    inodes = {
        line.split()[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[1] == f"0100007F:{port:04X}" and line.split()[3] == "0A"  # LISTEN
    }
    owners: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        owners[int(target[8:-1])] = proc.name
    return owners


def test_each_worker_listens_on_a_socket_of_its_own(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # Each worker has a listener of its own (SO_REUSEPORT; the master has none), so that an
    # overloaded worker can close its own; the kernel spreads new connections over them.
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url, "--workers", "2")
    try:
        deadline = time.monotonic() + 10
        while (
            len(workers := set(_children(server.process.pid))) < 2
            or len(owners := _listeners(server.port)) < 2
        ):
            assert time.monotonic() < deadline, "two workers did not start listening"
            time.sleep(0.1)
        assert sorted(map(int, owners.values())) == sorted(workers), (owners, workers)
        served_by = set()
        for _ in range(60):
            status, _, worker = _ask_on_a_new_connection(server, test_ca, "GET", "/healthz")
            assert status == 200
            served_by.add(worker)
            if served_by == workers:
                break
        assert served_by == workers
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_a_connection_that_waited_too_long_to_be_accepted_is_reset_before_its_handshake(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # The only worker stays stopped for 0.7 s after a client's TLS hello arrived: more than the
    # 0.5 s a connection may wait to be accepted (a sixth of the 3 s deadline), so the worker
    # resets it without a handshake when it runs again, counts it and says so.
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url, "--workers", "1")
    client = https_pool(test_ca)
    (worker,) = _children(server.process.pid)
    try:
        before = _sample(_metrics(client, server), REFUSED_SERIES)
        outcome: list[Exception | None] = []
        os.kill(worker, signal.SIGSTOP)
        try:
            waiting = threading.Thread(
                target=lambda: outcome.append(_handshake_error(server, test_ca))
            )
            waiting.start()
            _wait_for_unaccepted_bytes(server.port)  # the hello is in, not accepted yet
            time.sleep(0.7)
        finally:
            os.kill(worker, signal.SIGCONT)
        waiting.join(timeout=10)
        assert isinstance(outcome[0], ConnectionResetError), outcome
        assert _sample(_metrics(client, server), REFUSED_SERIES) == before + 1
        assert "overloaded: reset 1 new connection(s), the last after waiting 0." in server.log()
        assert _handshake_error(server, test_ca) is None  # not stopped: served
    finally:
        server.stop()


@contextlib.contextmanager
def _a_request_waiting_for_the_slot(
    server: ServeProcess, ca: TestCA, opa: OpaProcess
) -> Iterator[None]:
    """With one decision slot and ``opa`` stopped, one request holds the slot and another has
    waited 0.3 s for it while the block runs; then OPA runs again and both are answered."""
    assert opa.pid is not None
    holding, waiting = _tls_connection(server, ca), _tls_connection(server, ca)
    try:
        os.kill(opa.pid, signal.SIGSTOP)
        try:
            holding.sendall(_validate_request("holding"))
            time.sleep(0.05)
            waiting.sendall(_validate_request("waiting"))
            time.sleep(0.3)
            yield
        finally:
            os.kill(opa.pid, signal.SIGCONT)
        for connection in (holding, waiting):  # answered (decided or by the failure mode)
            assert _review_answer(connection)["uid"]
    finally:
        holding.close()
        waiting.close()


def test_new_connections_are_refused_while_a_request_waits_long_for_a_decision_slot(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # Once a request has waited more than 0.1 s for the only decision slot, the only worker
    # serves the next connection it takes and closes its listener: the connections waiting
    # behind that one are reset, later ones are refused at connect. 0.5 s after the worker is
    # no longer busy it listens again.
    flags = ["--opa-url", own_opa.url, "--workers", "1", "--threads", "1"]
    server = start_serve(tmp_path, test_ca, server_cert, *flags)
    client = https_pool(test_ca)
    try:
        page = _metrics(client, server)
        resets_before, closed_before = _sample(page, REFUSED_SERIES), _sample(page, CLOSED_SERIES)
        with (
            _a_request_waiting_for_the_slot(server, test_ca, own_opa),
            ThreadPoolExecutor(30) as pool,
        ):
            outcomes = list(pool.map(lambda _: _handshake_error(server, test_ca), range(30)))
            later = _handshake_error(server, test_ca)
        reset = [o for o in outcomes if isinstance(o, ConnectionResetError)]
        refused = [o for o in outcomes if isinstance(o, ConnectionRefusedError)]
        assert None in outcomes and len(reset) + len(refused) >= 10, outcomes
        assert outcomes.count(None) + len(reset) + len(refused) == 30, outcomes
        assert isinstance(later, ConnectionRefusedError), later
        time.sleep(0.5)  # OPA runs again and the queue is gone: calm for 0.5 s, then listening
        deadline = time.monotonic() + 5
        while _handshake_error(server, test_ca) is not None:
            assert time.monotonic() < deadline, "the worker did not listen again"
            time.sleep(0.05)
        page = _metrics(client, server)
        counted = _sample(page, REFUSED_SERIES) - resets_before
        assert counted <= len(reset) and (counted > 0 or not reset), (counted, outcomes)
        assert _sample(page, CLOSED_SERIES) - closed_before >= 0.5
    finally:
        server.stop()


def test_the_probe_port_answers_probes_in_plain_http_while_new_connections_are_refused(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # As above, a request waits long for the only decision slot; ten /healthz probes opened
    # at once on --probe-port are all answered (none reset), /readyz and /metrics too, in
    # plain HTTP. The probe port serves nothing else: /validate there is not found.
    probe_port = free_port()
    flags = ["--opa-url", own_opa.url, "--workers", "1", "--threads", "1"]
    server = start_serve(tmp_path, test_ca, server_cert, *flags, "--probe-port", str(probe_port))
    probes = urllib3.PoolManager(retries=False, timeout=5)
    base = f"http://127.0.0.1:{probe_port}"

    def probe(_: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", probe_port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status
        finally:
            connection.close()

    try:
        assert probes.request("GET", base + "/readyz").status == 200
        metrics_page = probes.request("GET", base + "/metrics")
        assert metrics_page.status == 200 and REFUSED_SERIES in metrics_page.data.decode()
        review = json.dumps(admission_review(deployment("on-the-probe-port"))).encode()
        assert probes.request("POST", base + "/validate", body=review).status == 404
        with (
            _a_request_waiting_for_the_slot(server, test_ca, own_opa),
            ThreadPoolExecutor(10) as pool,
        ):
            statuses = list(pool.map(probe, range(10)))
        assert statuses == [200] * 10
    finally:
        server.stop()


def _client_handshake(
    raw: socket.socket, ca: TestCA
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """Run a TLS client handshake over ``raw`` up to the client's last flight, which is kept
    back in the returned outgoing buffer (not sent)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    while True:
        try:
            tls.do_handshake()
            return tls, incoming, outgoing
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            incoming.write(raw.recv(65536))


def _bio_answer(raw: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO) -> dict[str, Any]:
    """Read one AdmissionReview answer through ``tls`` (memory buffers over ``raw``)."""
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        try:
            answer += tls.read(65536)
        except ssl.SSLWantReadError:
            incoming.write(raw.recv(65536))
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["response"]  # type: ignore[no-any-return]


def test_a_connection_s_first_request_counts_the_time_its_tls_handshake_took(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # With --timeout 1, OPA must be asked within 0.45 s. The client finishes its handshake
    # 0.6 s after its hello and sends its request with its last handshake bytes: counted from
    # the hello (as the API server counts its timeout, from before it connects), the request is
    # too late and the failure mode answers at once. Counted from its own bytes it would be
    # decided, as the same request on a connection made without delay is.
    flags = ["--opa-url", own_opa.url, "--timeout", "1", "--workers", "1"]
    server = start_serve(tmp_path, test_ca, server_cert, *flags)
    request = _validate_request("slow-handshake")
    prompt = _tls_connection(server, test_ca)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        prompt.sendall(request)
        assert (_review_answer(prompt).get("status") or {}).get("code") != 503  # decided
        tls, incoming, outgoing = _client_handshake(raw, test_ca)
        time.sleep(0.6)
        tls.write(request)
        raw.sendall(outgoing.read())
        response = _bio_answer(raw, tls, incoming)
        assert response["allowed"] is False and "overloaded" in response["status"]["message"]
    finally:
        prompt.close()
        raw.close()
        server.stop()


def test_a_first_request_sent_with_the_handshake_counts_its_wait_once(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # Default --timeout 3: OPA must be asked within 1.45 s of the hello. A TLS 1.3 client sends
    # its last handshake bytes and its request together while the only worker is stopped for
    # 0.9 s: 0.9 s have passed since the hello, so it is decided (counting the worker's delay
    # both as the handshake's and as the request's would make 1.8 s, and the failure mode).
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url, "--workers", "1")
    (worker,) = _children(server.process.pid)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        tls, incoming, outgoing = _client_handshake(raw, test_ca)
        os.kill(worker, signal.SIGSTOP)
        try:
            tls.write(_validate_request("sent-with-finished"))
            raw.sendall(outgoing.read())
            time.sleep(0.9)
        finally:
            os.kill(worker, signal.SIGCONT)
        response = _bio_answer(raw, tls, incoming)
        assert (response.get("status") or {}).get("code") != 503, response  # decided
    finally:
        raw.close()
        server.stop()


def test_a_first_request_sent_long_after_the_handshake_counts_from_its_own_arrival(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # A connection whose handshake took 1.6 s, then left idle for 1 s (Go's HTTP client keeps
    # a connection it dialed for a request that another connection took), sends a request to
    # an idle webhook: the request waited for nothing and is decided; counted from the hello,
    # 2.6 s of its 3 s would be gone.
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url, "--workers", "1")
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        tls, incoming, outgoing = _client_handshake(raw, test_ca)
        time.sleep(1.6)
        raw.sendall(outgoing.read())  # the handshake ends 1.6 s after the hello
        time.sleep(1.0)
        tls.write(_validate_request("idle-after-handshake"))
        raw.sendall(outgoing.read())
        response = _bio_answer(raw, tls, incoming)
        assert (response.get("status") or {}).get("code") != 503, response  # decided
    finally:
        raw.close()
        server.stop()


# ---- metrics across gunicorn workers ------------------------------------------------------------

DENIED_SERIES = (
    'edgepolicy_admission_requests_total{allowed="false",endpoint="validate",operation="CREATE"}'
)
CPU_SERIES = 'edgepolicy_decisions_total{action="deny",rule="finops.cpu"}'
DURATION_SERIES = 'edgepolicy_admission_duration_seconds_count{endpoint="validate"}'
NOT_JSON_SERIES = 'edgepolicy_rejected_requests_total{reason="not-json"}'
WORKERS_SERIES = "edgepolicy_webhook_workers"


def _ask_on_a_new_connection(
    server: ServeProcess, ca: TestCA, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes, int]:
    """Send one request on a connection of its own; return (status, body, the worker's pid)."""
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        assert connection.sock is not None
        worker = _worker_serving(server, connection.sock.getsockname()[1])
    finally:
        connection.close()
    return response.status, data, worker


def _worker_serving(server: ServeProcess, client_port: int) -> int:
    """The gunicorn worker holding the server side of the connection from ``client_port``."""
    wanted = f"0100007F:{server.port:04X} 0100007F:{client_port:04X}"
    inodes = [
        line.split()[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if " ".join(line.split()[1:3]) == wanted
    ]
    assert inodes, f"no server socket for client port {client_port}"
    for worker in _children(server.process.pid):
        for fd in Path(f"/proc/{worker}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inodes[0]}]":
                    return worker
            except FileNotFoundError:
                continue
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def _scrape_everywhere(server: ServeProcess, ca: TestCA, workers: set[int]) -> list[str]:
    """/metrics as every worker in ``workers`` serves it (asked on new connections)."""
    pages: dict[int, str] = {}
    for _ in range(200):
        status, data, worker = _ask_on_a_new_connection(server, ca, "GET", "/metrics")
        assert status == 200
        pages[worker] = data.decode()
        if workers <= set(pages):
            return list(pages.values())
    raise AssertionError(f"workers {workers - set(pages)} never answered /metrics")


def test_metrics_are_exact_totals_over_all_workers_and_survive_a_dead_one(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url, "--workers", "3")
    denied = json.dumps(admission_review(deployment("counted", cpu="64"))).encode()
    try:
        answered_by: list[int] = []
        while len(answered_by) < 12 or len(set(answered_by)) < 3:
            assert len(answered_by) < 300, f"requests never reached 3 workers: {answered_by}"
            status, data, worker = _ask_on_a_new_connection(
                server, test_ca, "POST", "/validate", denied
            )
            assert status == 200 and json.loads(data)["response"]["allowed"] is False
            answered_by.append(worker)
        for _ in range(5):
            status, _, _ = _ask_on_a_new_connection(server, test_ca, "POST", "/validate", b"{")
            assert status == 400
        workers = set(_children(server.process.pid))
        assert set(answered_by) == workers and len(workers) == 3
        sent = len(answered_by)
        for page in _scrape_everywhere(server, test_ca, workers):
            assert _sample(page, DENIED_SERIES) == sent
            assert _sample(page, CPU_SERIES) == sent
            assert _sample(page, DURATION_SERIES) == sent
            assert _sample(page, NOT_JSON_SERIES) == 5
            assert _sample(page, WORKERS_SERIES) == 3

        # A worker dies: gunicorn replaces it; child_exit drops the dead one from the live
        # workers, while what it counted stays in the totals. (A connection that reached the
        # dying worker's own listener before its exit closed it is reset, never served.)
        dead = answered_by[0]
        os.kill(dead, signal.SIGKILL)
        replacement: int | None = None
        for _ in range(300):
            try:
                status, _, worker = _ask_on_a_new_connection(
                    server, test_ca, "POST", "/validate", denied
                )
            except ConnectionResetError:
                continue
            assert status == 200
            sent += 1
            if worker not in workers:
                replacement = worker
                break
        assert replacement is not None, "the dead worker was never replaced"
        workers = (workers - {dead}) | {replacement}
        for page in _scrape_everywhere(server, test_ca, workers):
            assert _sample(page, WORKERS_SERIES) == 3
            assert _sample(page, DENIED_SERIES) == sent
            assert _sample(page, CPU_SERIES) == sent
    finally:
        server.stop()


# ---- gunicorn's master: patched for gevent, holding what the workers share --------------------

MODEL_SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "model-trust" / "input"


def test_the_master_holds_the_signature_libraries_its_workers_share(serve: ServeProcess) -> None:
    # The native modules of model-signing (blake3) and of sigstore (rfc3161-client) are mapped
    # in gunicorn's master: it imported both before forking, so the workers share those pages,
    # and those of the Python modules around them, instead of each importing its own copy
    # (bench/webhook_memory.py measures what that saves).
    maps = Path(f"/proc/{serve.process.pid}/maps").read_text()
    assert "/blake3/" in maps
    assert "/rfc3161_client/" in maps


def test_a_fresh_worker_verifies_its_first_signed_model_within_the_deadline(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, opa_binary: Path
) -> None:
    # The first request a new serve gets names a signed model: verified by a worker forked
    # from the patched master that imported the libraries, and admitted (a verification that
    # missed the deadline would be answered by the failure mode: denied).
    policies = MODEL_SAMPLE / "policies.yaml"
    server = start_serve(
        tmp_path, test_ca, server_cert, "--opa", str(opa_binary), "--policies", str(policies)
    )
    try:
        (workload,) = [
            document
            for document in yaml.safe_load_all((MODEL_SAMPLE / "workloads.yaml").read_text())
            if document["metadata"]["name"] == "signed-int8"
        ]
        response = validate(https_pool(test_ca), server, admission_review(workload))
        assert response["allowed"] is True, response
        time.sleep(0.5)  # each worker's copy of the OPA watchdog has woken up and ended
        log = server.log()
        assert "Traceback" not in log
        assert "MonkeyPatchWarning" not in log  # patched before anything imported ssl
    finally:
        server.stop()


def _workers_become(server: ServeProcess, check: Any, what: str) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = _children(server.process.pid)
        if check(workers):
            return workers
        time.sleep(0.05)
    pytest.fail(f"{what}:\n{server.log()}")


def test_the_patched_master_reloads_on_hup_and_stops_gracefully_on_term(
    tmp_path: Path, test_ca: TestCA, server_cert: ServerCert, own_opa: OpaProcess
) -> None:
    # gunicorn's signals reach the master through gevent's loop now: HUP starts new workers and
    # stops the old ones, TERM stops everything with exit status 0.
    server = start_serve(tmp_path, test_ca, server_cert, "--opa-url", own_opa.url)
    try:
        old = _workers_become(server, lambda found: len(found) == 2, "two workers never ran")
        os.kill(server.process.pid, signal.SIGHUP)
        _workers_become(
            server,
            lambda found: len(found) == 2 and not set(found) & set(old),
            "HUP did not replace the workers",
        )
        client = https_pool(test_ca)
        response = validate(client, server, admission_review(deployment("after-hup", cpu="64")))
        assert response["allowed"] is False  # decided by the policy, by a new worker
        client.clear()  # no kept-alive connection for the workers to wait for
        os.kill(server.process.pid, signal.SIGTERM)
        assert server.process.wait(30) == 0
    finally:
        server.stop()
