"""Paginated lists of the shared Kubernetes client against the stand-in API server of
test_kube.py (the real API server's pages and 410 restarts: tests/e2e/test_audit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_kube import ROUTES, FakeApi, api  # noqa: F401 - a fixture, used by name

from edgepolicy.kube import KubernetesApiError, from_kubeconfig

DEPLOYMENTS = "/apis/apps/v1/deployments"


@pytest.fixture
def stand_in(api: tuple[FakeApi, Path]) -> tuple[FakeApi, Path]:  # noqa: F811 - test_kube's fixture
    """test_kube.py's stand-in API server over TLS and a kubeconfig pointing at it."""
    return api


def _item(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}}


def test_pages_are_followed_and_joined(
    stand_in: tuple[FakeApi, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, kubeconfig = stand_in
    pages = {
        f"{DEPLOYMENTS}?limit=2": {
            "metadata": {"continue": "a+b/c"},
            "items": [_item("1"), _item("2")],
        },
        f"{DEPLOYMENTS}?limit=2&continue=a%2Bb%2Fc": {"metadata": {}, "items": [_item("3")]},
    }
    for path, body in pages.items():
        monkeypatch.setitem(ROUTES, path, (200, body))

    items = from_kubeconfig(kubeconfig).list_items(DEPLOYMENTS, timeout=2, limit=2)

    assert [item["metadata"]["name"] for item in items] == ["1", "2", "3"]
    assert [path for _, path, _ in server.requests] == list(pages)


def test_a_collection_the_server_does_not_serve_is_empty(stand_in: tuple[FakeApi, Path]) -> None:
    _, kubeconfig = stand_in

    assert from_kubeconfig(kubeconfig).list_items("/apis/x.example/v1/things", timeout=2) == []


def test_a_list_that_keeps_expiring_is_an_error(
    stand_in: tuple[FakeApi, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, kubeconfig = stand_in
    monkeypatch.setitem(
        ROUTES,
        f"{DEPLOYMENTS}?limit=1",
        (200, {"metadata": {"continue": "t"}, "items": [_item("1")]}),
    )
    monkeypatch.setitem(
        ROUTES,
        f"{DEPLOYMENTS}?limit=1&continue=t",
        (410, {"message": "continue parameter is too old"}),
    )

    with pytest.raises(
        KubernetesApiError, match=r"expired 3 times .*410 continue parameter is too old"
    ):
        from_kubeconfig(kubeconfig).list_items(DEPLOYMENTS, timeout=2, limit=1, restarts=2)

    firsts = [path for _, path, _ in server.requests if "continue" not in path]
    assert len(firsts) == 3  # the first page, then two restarts from scratch


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, {"message": "etcd is sad"}, "HTTP 500 etcd is sad"),
        (200, {"items": "many"}, "response is not a list"),
        (403, {"message": "forbidden"}, "HTTP 403 forbidden"),
    ],
)
def test_a_bad_page_names_the_collection(
    stand_in: tuple[FakeApi, Path],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    body: object,
    message: str,
) -> None:
    _, kubeconfig = stand_in
    monkeypatch.setitem(ROUTES, f"{DEPLOYMENTS}?limit=500", (status, body))

    with pytest.raises(KubernetesApiError, match=f"{DEPLOYMENTS}: {message}"):
        from_kubeconfig(kubeconfig).list_items(DEPLOYMENTS, timeout=2)
