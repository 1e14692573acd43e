"""OpaProcess and OpaClient against a real OPA, with the contract-following Rego fixture."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from pathlib import Path

import pytest

from edgepolicy.bundle_format import bundle_roots
from edgepolicy.errors import BundleError, OpaError
from edgepolicy.input_builder import admission_review, decision_input
from edgepolicy.opa_binary import find_opa
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_process import OPA_GOGC, OpaProcess

pytestmark = pytest.mark.integration

FIXTURE_REGO = Path(__file__).resolve().parent.parent / "unit" / "assets" / "rego"
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"deny": "yes"}}}


def _bundle(tmp_path: Path, roots: list[str], data: dict[str, object]) -> Path:
    """Write a bundle tarball holding the fixture Rego, ``data`` and a manifest with ``roots``."""
    path = tmp_path / "bundle.tar.gz"
    files = {
        "/.manifest": json.dumps({"revision": "r1", "roots": roots}).encode(),
        "/data.json": json.dumps(data).encode(),
        "/edgepolicy/admission/decision.rego": (FIXTURE_REGO / "decision.rego").read_bytes(),
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


def test_decides_through_the_rest_api_with_data_merged_at_the_root() -> None:
    data = {"edgepolicy": {"settings": {"enforcementActions": {"test.deny": "warn"}}}}
    with OpaProcess(find_opa(), paths=[FIXTURE_REGO], data=data) as opa:
        assert opa.url.startswith("http://127.0.0.1:")
        client = OpaClient(opa.url)
        decision = client.decide(decision_input(admission_review(POD)))
        assert decision.allowed is True
        assert [w.rule for w in decision.warnings] == ["test.deny"]
        assert client.health() is True
        pid = opa.pid
    assert pid is not None
    assert OpaClient(opa.url, timeout=0.5).health() is False


def test_opa_runs_with_the_gc_target_unless_the_environment_sets_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    with OpaProcess(find_opa(), paths=[FIXTURE_REGO]) as opa:
        assert _environment_of(opa.pid)["GOGC"] == OPA_GOGC
    monkeypatch.setenv("GOGC", "150")
    with OpaProcess(find_opa(), paths=[FIXTURE_REGO]) as opa:
        assert _environment_of(opa.pid)["GOGC"] == "150"


def _environment_of(pid: int | None) -> dict[str, str]:
    assert pid is not None
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def test_bundle_tarball_is_loaded_as_a_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, ["edgepolicy"], {})
    assert bundle_roots(bundle) == ["edgepolicy"]
    with OpaProcess(find_opa(), bundles=[bundle], data={"other": {"x": 1}}) as opa:
        client = OpaClient(opa.url)
        assert client.decide(decision_input(admission_review(POD))).allowed is False
        assert client.query("other/x") == 1


def test_data_under_a_bundle_root_is_refused_before_starting(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, ["edgepolicy"], {})
    with pytest.raises(
        BundleError, match="sets data.edgepolicy, but bundle .* owns data.edgepolicy"
    ):
        OpaProcess(find_opa(), bundles=[bundle], data={"edgepolicy": {"settings": {"a": 1}}})


def test_opa_that_cannot_start_reports_its_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rego"
    broken.write_text("package broken\n\nallow if {\n")
    with (
        pytest.raises(OpaError, match="OPA exited with status .*broken.rego"),
        OpaProcess(find_opa(), paths=[broken]),
    ):
        pass


def test_conflicting_data_files_are_reported_by_opa(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text('{"edgepolicy": {"settings": {"x": 1}}}')
    second.write_text('{"edgepolicy": {"settings": {"x": 2}}}')
    with (
        pytest.raises(OpaError, match="conflicting values at data.edgepolicy.settings.x"),
        OpaProcess(find_opa(), paths=[first, second]),
    ):
        pass


def test_a_port_taken_meanwhile_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepolicy import opa_process

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1]]
        real_free_port = opa_process._free_port
        monkeypatch.setattr(
            opa_process, "_free_port", lambda: ports.pop() if ports else real_free_port()
        )
        with OpaProcess(find_opa(), paths=[FIXTURE_REGO]) as opa:
            assert OpaClient(opa.url).health()
            assert opa.url != f"http://127.0.0.1:{taken.getsockname()[1]}"


def test_fixed_address_in_use_is_an_error_without_retry() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        with (
            pytest.raises(OpaError, match="address already in use"),
            OpaProcess(find_opa(), paths=[FIXTURE_REGO], addr=addr),
        ):
            pass
