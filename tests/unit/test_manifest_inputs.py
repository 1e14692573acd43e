"""Reading inputs for a CI gate: standard input, pipes, and skipping what is not Kubernetes."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from edgepolicy.errors import InputError
from edgepolicy.manifests import (
    ManifestSet,
    SkippedDocument,
    load_paths,
    load_text,
    read_paths,
    read_text,
)

POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n"

HELM_VALUES = "replicaCount: 3\nimage:\n  repository: ghcr.io/acme/infer\n  tag: v1\n"
CHART = "apiVersion: v2\nname: inference\nversion: 0.1.0\n"
OPA_CONFIG = "services:\n  bundles:\n    url: http://bundles:8282\nbundles:\n  edge: {}\n"

UNRENDERED = """\
apiVersion: v1
kind: Service
metadata:
  name: web
---
{{- if .Values.enabled }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "chart.fullname" . }}
{{- end }}
---
apiVersion: v1
kind: Pod
metadata:
  name: after-the-template
"""


def names(result: ManifestSet) -> list[str]:
    return [m.obj["metadata"]["name"] for m in result.manifests]


def test_dash_reads_standard_input_once_named_stdin(tmp_path: Path) -> None:
    file = tmp_path / "file.yaml"
    file.write_text(POD.format(name="from-file"))
    stdin = io.BytesIO(("# rendered\n" + POD.format(name="piped")).encode())
    result = read_paths(["-", file, "-"], stdin=stdin)
    assert names(result) == ["piped", "from-file"]
    piped = result.manifests[0]
    assert (piped.path, piped.index, piped.line) == ("<stdin>", 0, 2)


def test_standard_input_json_is_read_as_json() -> None:
    text = '{\n\t"apiVersion": "v1",\n\t"kind": "Pod",\n\t"metadata": {"name": "tabbed"}\n}\n'
    result = read_paths(["-"], stdin=io.BytesIO(text.encode()))
    assert names(result) == ["tabbed"]


def test_standard_input_errors_name_stdin_and_line() -> None:
    stdin = io.BytesIO(b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   bad: 1\n")
    with pytest.raises(InputError, match=r"^<stdin>:5: invalid YAML"):
        read_paths(["-"], stdin=stdin)


def test_a_named_pipe_is_read_like_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "manifests"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as pipe:
            pipe.write(POD.format(name="through-a-pipe"))

    writer = threading.Thread(target=feed)
    writer.start()
    result = read_paths([fifo, fifo])  # named twice, read once (a second read would block)
    writer.join(timeout=10)
    assert names(result) == ["through-a-pipe"]
    assert result.manifests[0].path == str(fifo)


def test_a_symbolic_link_to_a_pipe_is_not_called_broken(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "stdin-like"
    link.symlink_to(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as pipe:
            pipe.write(POD.format(name="linked"))

    writer = threading.Thread(target=feed)
    writer.start()
    result = read_paths([link])
    writer.join(timeout=10)
    assert names(result) == ["linked"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (HELM_VALUES, 1, "not a Kubernetes object: object has no apiVersion and no kind"),
        (CHART, 1, "not a Kubernetes object: object has no kind"),
        (OPA_CONFIG, 1, "not a Kubernetes object: object has no apiVersion and no kind"),
        ("- a\n- b\n", 1, "not a Kubernetes object: expected a Kubernetes object (a mapping)"),
    ],
)
def test_documents_that_are_not_objects_are_skipped_with_their_place(
    text: str, line: int, reason: str
) -> None:
    result = read_text(POD.format(name="kept") + "---\n" + text, "mixed.yaml", strict=False)
    assert names(result) == ["kept"]
    (skipped,) = result.skipped
    assert (skipped.path, skipped.document, skipped.line) == ("mixed.yaml", 2, line + 5)
    assert skipped.reason.startswith(reason)
    assert str(skipped).startswith(f"mixed.yaml:{line + 5} (document 2): {reason}")


@pytest.mark.parametrize("text", [HELM_VALUES, CHART, OPA_CONFIG])
def test_strict_refuses_documents_that_are_not_objects(text: str) -> None:
    with pytest.raises(InputError, match=r"^other.yaml:1: object has no"):
        read_text(text, "other.yaml", strict=True)


def test_list_items_that_are_not_objects_are_skipped_with_their_line() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- {kind: Pod}\n- " + POD.format(name="b").replace(
        "\n", "\n  "
    )
    result = read_text(text, "list.yaml", strict=False)
    assert names(result) == ["b"]
    assert result.skipped == [
        SkippedDocument(
            "list.yaml", 1, 4, "List item 1: not a Kubernetes object: object has no apiVersion"
        )
    ]


def test_unrendered_template_documents_are_skipped_and_the_rest_read() -> None:
    result = read_text(UNRENDERED, "templates/all.yaml", strict=False)
    assert names(result) == ["web", "after-the-template"]
    assert [m.line for m in result.manifests] == [1, 13]
    (skipped,) = result.skipped
    assert (skipped.document, skipped.line) == (2, 6)
    assert skipped.reason.startswith("unrendered template ({{ }}): invalid YAML")


def test_a_document_broken_without_template_text_is_still_an_error() -> None:
    text = UNRENDERED + "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   bad: 1\n"
    with pytest.raises(InputError, match=r"^t.yaml:22: invalid YAML"):
        read_text(text, "t.yaml", strict=False)


def test_strict_refuses_an_unrendered_template_with_a_hint() -> None:
    with pytest.raises(InputError, match=r"^t.yaml:\d+: invalid YAML.*render it first"):
        read_text(UNRENDERED, "t.yaml", strict=True)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("metadata.name",
         'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "{{ .Release.Name }}"\n'),
        ("metadata.namespace",
         "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: '{{ .Values.ns }}'\n"),
        ("kind", 'apiVersion: v1\nkind: "{{ .Values.kind }}"\n'),
    ],
)  # fmt: skip
def test_templates_that_parse_are_skipped_by_their_identity(field: str, text: str) -> None:
    result = read_text(text, "t.yaml", strict=False)
    assert result.manifests == []
    (skipped,) = result.skipped
    assert skipped.reason == f"unrendered template: {field} holds template text ({{{{ }}}})"
    with pytest.raises(InputError, match=f"^t.yaml:1: unrendered template: {field}"):
        read_text(text, "t.yaml", strict=True)


def test_template_text_elsewhere_does_not_hide_an_object() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
        "  annotations:\n    note: '{{ not rendered }}'\n"
    )
    result = read_text(text, "t.yaml", strict=False)
    assert names(result) == ["p"]
    assert result.skipped == []


def test_empty_documents_are_neither_objects_nor_skipped() -> None:
    result = read_text("---\n# Source: chart/templates/empty.yaml\n---\n", "-", strict=False)
    assert result.manifests == []
    assert result.skipped == []


def test_bundle_builds_and_serve_read_template_text_as_before(tmp_path: Path) -> None:
    """load_text (bundle builds) and load_paths (serve --policies) never skip a document for
    its template text: a policy must not vanish from a bundle because it holds ``{{``."""
    with pytest.raises(InputError, match=r"^t.yaml:\d+: invalid YAML"):
        load_text(UNRENDERED, "t.yaml", strict=False)
    named = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "{{ .Release.Name }}"\n'
    assert [m.obj["metadata"]["name"] for m in load_text(named, "t.yaml", strict=False)] == [
        "{{ .Release.Name }}"
    ]
    file = tmp_path / "named.yaml"
    file.write_text(named)
    assert len(load_paths([file])) == 1


def test_a_text_document_is_skipped_showing_only_its_start() -> None:
    notes = "Thank you for installing {{ .Chart.Name }}. " + "Your release is named x. " * 20
    result = read_text(notes, "templates/NOTES.txt", strict=False)
    (skipped,) = result.skipped
    assert skipped.reason == (
        "not a Kubernetes object: expected a Kubernetes object (a mapping), got str "
        "'Thank you for installing {{ .Chart.Nam…"
    )


TEMPLATE_FIRST = "{{- if .Values.enabled }}\n" + POD.format(name="conditional") + "{{- end }}\n"


def test_a_stream_that_starts_with_a_template_is_skipped_not_read_as_json() -> None:
    """``cat templates/*.yaml | edgepolicy check -``: a chart template often starts with
    ``{{- if``, which is no JSON object; it is an unrendered template like in a .yaml file."""
    result = read_paths(["-"], stdin=io.BytesIO(TEMPLATE_FIRST.encode()), strict=False)
    assert result.manifests == []
    (skipped,) = result.skipped
    assert (skipped.path, skipped.document, skipped.line) == ("<stdin>", 1, 1)
    assert skipped.reason.startswith("unrendered template ({{ }})")


def test_a_json_template_is_skipped_as_a_template() -> None:
    result = read_text("{{ toJson .Values.pod }}\n", "chart/pod.json", strict=False)
    assert result.manifests == []
    (skipped,) = result.skipped
    assert skipped.reason.startswith("unrendered template ({{ }})")
    with pytest.raises(InputError, match=r"^chart/pod.json:1: invalid JSON"):
        read_text("{{ toJson .Values.pod }}\n", "chart/pod.json", strict=True)
