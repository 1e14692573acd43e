"""Read Kubernetes objects from YAML and JSON manifests.

Files may hold several YAML documents; a ``kind: List`` (or ``…List``) is expanded into its items.
Every object remembers its file, its position in the file and the line where it starts, so reports
and errors can point at it. Timestamps stay strings, as the Kubernetes API keeps them.

``-`` names standard input; pipes such as ``/dev/stdin`` and ``<(...)`` are read like files.
Outside strict mode, documents that are not Kubernetes objects (Helm values, ``Chart.yaml``, OPA
configuration) and unrendered templates (``{{ }}``) are skipped and reported as
:class:`SkippedDocument`, never silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from edgepolicy.errors import InputError

POLICY_GROUP = "policy.apexlogic.com"
POLICY_API_VERSION = f"{POLICY_GROUP}/v1alpha1"
POLICY_KINDS = frozenset({"FinOpsPolicy", "ModelPolicy"})
MANIFEST_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
STDIN = "-"
STDIN_NAME = "<stdin>"
TEMPLATE_MARK = "{{"
MAX_NODES = 1_000_000
# Deeper than any real Kubernetes object (a CRD schema 45 properties deep still fits), and
# shallow enough that parsing, copying and encoding never come near Python's recursion limit.
MAX_DEPTH = 100


class _TooDeepError(Exception):
    """Raised inside the YAML composer when a document nests deeper than ``MAX_DEPTH``."""


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class KubernetesLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """A safe loader that reads YAML as the Kubernetes API does.

    Timestamps stay strings, and a key repeated in one mapping is an error (kubectl refuses
    such manifests; silently keeping the last value could hide what a reviewer saw). A
    document nesting deeper than ``MAX_DEPTH`` is refused while it is composed, before the
    parser's own recursion could exhaust the stack.
    """

    def __init__(self, stream: Any) -> None:
        """Start reading ``stream`` at nesting depth 0."""
        super().__init__(stream)
        self._depth = 0

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """Count one nesting level down; refuse documents deeper than ``MAX_DEPTH``."""
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooDeepError
        super().descend_resolver(current_node, current_index)

    def ascend_resolver(self) -> None:
        """Count one nesting level up."""
        self._depth -= 1
        super().ascend_resolver()

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Build a value, turning one that cannot be converted (``!!float abc``, ``!!bool x``,
        an integer of thousands of digits) into a YAML error at the value's line."""
        try:
            return super().construct_object(node, deep=deep)
        except _CONSTRUCTION_ERRORS as error:
            raise yaml.constructor.ConstructorError(
                None, None, _unconstructible(node, error), node.start_mark
            ) from error

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, refusing duplicate keys with the line of the second one."""
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key {key_node.value!r} appears twice",
                    key_node.start_mark,
                )
            seen.add(key_node.value)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_MERGE_TAG = "tag:yaml.org,2002:merge"


# What PyYAML's constructors raise (besides YAML errors) for a value their explicit tag forbids.
_CONSTRUCTION_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)


def _unconstructible(node: yaml.Node, error: Exception) -> str:
    value = node.value if isinstance(node, yaml.ScalarNode) else ""
    shown = f" {value if len(value) <= 20 else value[:20] + '…'!r}" if value else ""
    detail = f": {_plain(error)}" if isinstance(error, ValueError | OverflowError) else ""
    return f"cannot read {node.tag}{shown}{detail}"


def _plain(error: Exception) -> str:
    """An error's message without Python's advice on raising its limits."""
    return str(error).split("; use sys.set_int_max_str_digits")[0]


KubernetesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object read from a file.

    ``index`` counts objects from 0 within the file (items of a List each count); ``line`` is the
    1-based line where the object's document or list item starts (None when unknown).
    """

    path: str
    index: int
    line: int | None
    obj: dict[str, Any]


def is_policy_object(obj: Mapping[str, Any]) -> bool:
    """Tell whether ``obj`` is a FinOpsPolicy or ModelPolicy of the policy.apexlogic.com group."""
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str):
        return False
    return api_version.split("/")[0] == POLICY_GROUP and obj.get("kind") in POLICY_KINDS


@dataclass(frozen=True)
class SkippedDocument:
    """A document that was read but not checked, and why.

    ``document`` counts the documents of the file from 1 (for a List item: its List's
    document); ``line`` is the 1-based line where it starts (None when unknown).
    """

    path: str
    document: int
    line: int | None
    reason: str

    def __str__(self) -> str:
        """``path:line (document N): reason``."""
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where} (document {self.document}): {self.reason}"


@dataclass(frozen=True)
class ManifestSet:
    """The objects read from some inputs, and the documents skipped on the way."""

    manifests: list[Manifest] = dataclasses.field(default_factory=list)
    skipped: list[SkippedDocument] = dataclasses.field(default_factory=list)


def load_paths(paths: Sequence[str | Path]) -> list[Manifest]:
    """Load every object from the given files and directories; see :func:`read_paths`
    (strict: every document must be a Kubernetes object).

    Raises:
        InputError: as :func:`read_paths` raises it.
    """
    return read_paths(paths, templates=False).manifests


def read_paths(
    paths: Sequence[str | Path],
    *,
    strict: bool = True,
    templates: bool = True,
    stdin: BinaryIO | None = None,
) -> ManifestSet:
    """Read every object from the given files, directories and standard input.

    ``-`` is standard input (``stdin``, default ``sys.stdin.buffer``), named ``<stdin>`` in
    results and messages; pipes and character devices named explicitly (``/dev/stdin``,
    ``/dev/fd/63`` from ``<(...)``) are read once like files. Directories contribute their
    ``.yaml``, ``.yml`` and ``.json`` files in sorted order, skipping hidden files and
    directories (names starting with a dot, such as ``.git`` or ``.github``); files named
    explicitly are read whatever their suffix or name. An input reached twice (named twice, or
    also inside a named directory, or ``-`` beside ``/dev/stdin``) is read once, where first
    reached. ``strict`` and ``templates`` are as :func:`read_text` takes them.

    Raises:
        InputError: a path is empty, does not exist or cannot be read (a broken symbolic link
            inside a directory included), standard input is closed, a file is not valid
            YAML/JSON (the message names the file and line), or (strict) a document is not a
            Kubernetes object.
    """
    result = ManifestSet()
    seen: set[tuple[int, int] | str] = set()
    for source in _expand(paths):
        identity = _identity(source, stdin)
        if identity in seen:
            continue
        seen.add(identity)
        text = _read(source, stdin)
        name = STDIN_NAME if source == STDIN else str(source)
        read = read_text(
            text, name, strict=strict, templates=templates, sniff_json=not _is_regular(source)
        )
        result.manifests.extend(read.manifests)
        result.skipped.extend(read.skipped)
    return result


def _stdin_stream(stdin: BinaryIO | None) -> BinaryIO:
    if stdin is not None:
        return stdin
    if sys.stdin is None:
        raise InputError("standard input is closed: pipe manifests into it", path=STDIN_NAME)
    return sys.stdin.buffer


def _identity(source: Path | str, stdin: BinaryIO | None) -> tuple[int, int] | str:
    """The device and inode of ``source`` (so a file, or a pipe, reached twice is read once),
    or ``-`` for a standard input that has no file descriptor."""
    try:
        status = os.fstat(_stdin_stream(stdin).fileno()) if source == STDIN else os.stat(source)
    except (OSError, ValueError, AttributeError):  # an in-memory stream has no descriptor
        return STDIN if source == STDIN else str(Path(source).resolve())
    return (status.st_dev, status.st_ino)


def _is_regular(source: Path | str) -> bool:
    return source != STDIN and Path(source).is_file()


def _read(source: Path | str, stdin: BinaryIO | None) -> str:
    """The text of a file, pipe or standard input, read once.

    Raises:
        InputError: it cannot be read or is not UTF-8, naming it.
    """
    name = STDIN_NAME if source == STDIN else str(source)
    try:
        data = _stdin_stream(stdin).read() if source == STDIN else Path(source).read_bytes()
        return data.decode("utf-8-sig")
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise InputError(f"cannot read file: {error}", path=name) from error


def load_text(text: str, path: str, *, strict: bool = True) -> list[Manifest]:
    """Parse manifest text that was read from ``path``; see :func:`read_text` (template text
    is not special: a policy repository's document must never vanish because it holds ``{{``).

    Raises:
        InputError: as :func:`read_text` raises it.
    """
    return read_text(text, path, strict=strict, templates=False).manifests


def read_text(
    text: str, path: str, *, strict: bool = True, templates: bool = True, sniff_json: bool = False
) -> ManifestSet:
    """Parse manifest text that was read from ``path`` (used only in messages and results).

    JSON is parsed as JSON when ``path`` ends in ``.json`` (in any case, as directories are
    searched and data files read), or with ``sniff_json`` (for streams, which have no suffix)
    when the text starts with ``{`` but not ``{{`` (a template); everything else as YAML (which
    also accepts JSON); JSON that does not parse and holds ``{{`` is a template too. Empty
    documents are ignored. With ``strict=False``, documents that are not Kubernetes objects
    (not a mapping, or without a string ``apiVersion`` and ``kind``) and, with ``templates``,
    unrendered templates (a document that is not valid YAML and holds ``{{``, or whose
    apiVersion, kind, name or namespace holds ``{{``) are skipped and listed instead of
    rejected, for repositories that mix manifests with other YAML; with ``strict``, they are
    errors. Template text elsewhere in a valid object never skips it.

    Raises:
        InputError: the text is not valid YAML/JSON (outside templates, when not strict), a
            FinOpsPolicy or ModelPolicy has another apiVersion than ``POLICY_API_VERSION``, or
            (strict) a document is not a Kubernetes object or is an unrendered template; the
            message names ``path`` and the line.
    """
    start = text.lstrip()
    is_json = path.lower().endswith(".json") or (
        sniff_json and start.startswith("{") and not start.startswith(TEMPLATE_MARK)
    )
    result = ManifestSet()
    if is_json:
        try:
            documents = json_documents(text, path)
        except InputError:
            if strict or not templates or TEMPLATE_MARK not in text:
                raise
            _read_template_stream(text, path, result)
            return result
        _read_documents(documents, path, 1, (strict, templates), result)
        return result
    try:
        documents = yaml_documents(text, path)
    except InputError as error:
        if strict or not templates or TEMPLATE_MARK not in text:
            if templates and TEMPLATE_MARK in text:
                raise InputError(
                    f"{_bare(error, path)} (an unrendered template? render it first, e.g. with "
                    "helm template)",
                    path=path,
                    line=error.line,
                ) from error
            raise
        _read_template_stream(text, path, result)
        return result
    _read_documents(documents, path, 1, (strict, templates), result)
    return result


def _bare(error: InputError, path: str) -> str:
    """An InputError's message without its ``path:line:`` prefix."""
    message = str(error)
    where = f"{path}:{error.line}: " if error.line is not None else f"{path}: "
    return message.removeprefix(where)


_DOCUMENT_START = re.compile(r"^---(?=[ \t]|\r?$)", re.MULTILINE)


def _read_template_stream(text: str, path: str, result: ManifestSet) -> None:
    """Read a YAML stream that is not valid YAML and holds ``{{`` one document at a time
    (split at ``---`` lines, as a YAML parser splits them): documents that are not valid YAML
    and hold ``{{`` are skipped as unrendered templates, the others read as usual.

    Raises:
        InputError: a document without ``{{`` is not valid YAML, or another error
            :func:`read_text` raises.
    """
    starts = [match.start() for match in _DOCUMENT_START.finditer(text)]
    if not starts or not _only_comments(text[: starts[0]]):
        starts.insert(0, 0)
    for number, start in enumerate(starts, start=1):
        end = starts[number] if number < len(starts) else len(text)
        first_line = text.count("\n", 0, start) + 1
        chunk = "\n" * (first_line - 1) + text[start:end]  # keeps line numbers exact
        try:
            documents = yaml_documents(chunk, path)
        except InputError as error:
            if TEMPLATE_MARK not in chunk:
                raise
            problem = _bare(error, path)
            result.skipped.append(
                SkippedDocument(
                    path,
                    number,
                    _content_line(text, start) or first_line,
                    f"unrendered template ({TEMPLATE_MARK} }}}}): {problem}",
                )
            )
            continue
        _read_documents(documents, path, number, (False, True), result)


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def _content_line(text: str, start: int) -> int | None:
    """The line of the first line after ``start`` that is neither blank, a comment nor ``---``."""
    line = text.count("\n", 0, start) + 1
    for raw in text[start:].splitlines():
        stripped = raw.strip()
        if stripped and not stripped.startswith("#") and not _DOCUMENT_START.match(raw):
            return line
        line += 1
    return None


def _read_documents(
    documents: list[_Document],
    path: str,
    first: int,
    mode: tuple[bool, bool],
    result: ManifestSet,
) -> None:
    """Add the objects of parsed ``documents`` (numbered from ``first``) to ``result``;
    ``mode`` is (strict, templates) as :func:`read_text` takes them.

    Raises:
        InputError: a document's values are not JSON, its metadata cannot name it, or
            (strict) it is not a Kubernetes object.
    """
    for number, (value, line, item_lines) in enumerate(documents, start=first):
        if value is None:
            continue
        strict, templates = mode
        problem = _not_an_object(value, templates=templates)
        if problem is not None:
            if strict:
                raise InputError(problem, path=path, line=line)
            result.skipped.append(SkippedDocument(path, number, line, _skip_reason(problem)))
            continue
        check_json_value(value, path, line)
        for obj, obj_line in _expand_list(value, path, line, item_lines, mode=mode):
            if isinstance(obj, str):
                result.skipped.append(SkippedDocument(path, number, obj_line, obj))
            else:
                index = len(result.manifests)
                result.manifests.append(Manifest(path=path, index=index, line=obj_line, obj=obj))


def _expand(paths: Sequence[str | Path]) -> Iterator[Path | str]:
    for raw in paths:
        if str(raw) == "":
            raise InputError("empty path: name a file or directory (use . for this directory)")
        if str(raw) == STDIN:
            yield STDIN
            continue
        path = Path(raw)
        if path.is_dir():
            yield from _directory_files(path)
        elif path.is_file() or _is_stream(path):
            yield path
        elif path.is_symlink() and not path.exists():
            raise InputError("broken symbolic link (its target does not exist)", path=str(path))
        elif path.exists():
            raise InputError("not a regular file, pipe or directory", path=str(path))
        else:
            raise InputError("no such file or directory", path=str(path))


def _is_stream(path: Path) -> bool:
    """Whether ``path`` is a pipe or character device (``/dev/stdin``, ``<(...)``)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _directory_files(directory: Path) -> list[Path]:
    """The manifest files under ``directory``, sorted, without hidden files and directories.

    Raises:
        InputError: a manifest-named entry is a broken symbolic link, or a directory cannot
            be listed.
    """
    found: list[Path] = []

    def refuse(error: OSError) -> None:
        raise InputError(f"cannot list directory: {error.strerror}", path=str(error.filename))

    for root, dirs, files in os.walk(directory, onerror=refuse):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            path = Path(root, name)
            if name.startswith(".") or path.suffix.lower() not in MANIFEST_SUFFIXES:
                continue
            if path.is_file():
                found.append(path)
            elif path.is_symlink() and not path.exists():
                raise InputError("broken symbolic link (its target does not exist)", path=str(path))
    return sorted(found)


_Document = tuple[Any, int | None, list[int | None]]


def yaml_documents(text: str, path: str) -> list[_Document]:
    """Return (value, start line, start lines of ``items`` entries) for each YAML document.

    Raises:
        InputError: the text is not valid YAML, or nests deeper than ``MAX_DEPTH``; the
            message names ``path`` and the line.
    """
    loader = KubernetesLoader(text)
    documents: list[_Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            try:
                value = loader.construct_document(node)
            except _CONSTRUCTION_ERRORS as error:  # raised where collections are filled in
                problem = (
                    "invalid YAML: a value does not fit its explicit tag (such as !!map or "
                    f"!!set): {type(error).__name__}: {_plain(error)}"
                )
                raise InputError(problem, path=path, line=_document_line(node)) from error
            documents.append((value, _document_line(node), _item_lines(node)))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        if error.context and error.context_mark is not None and error.problem:
            problem += f" ({error.context} at line {error.context_mark.line + 1})"
        raise InputError(f"invalid YAML: {problem}", path=path, line=line) from error
    except yaml.reader.ReaderError as error:
        line = _line_at_offset(text, error.position)
        raise InputError(f"invalid YAML: {_reader_problem(error)}", path=path, line=line) from error
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {error}", path=path) from error
    except (_TooDeepError, RecursionError) as error:
        raise InputError(_too_deep(), path=path, line=_deep_yaml_line(text)) from error
    finally:
        loader.dispose()
    return documents


def field_key_lines(text: str, path: str, field: str) -> tuple[int | None, dict[str, int]]:
    """Return the 1-based line of the top-level ``field`` of the first YAML mapping document of
    ``text``, and the line of each key of the mapping under it (``(None, {})`` when absent).

    Meant for text :func:`yaml_documents` has read already.

    Raises:
        InputError: the text is not valid YAML (the message names ``path``).
    """
    loader = KubernetesLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if not isinstance(node, yaml.MappingNode):
                continue
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == field:
                    items = value.value if isinstance(value, yaml.MappingNode) else []
                    lines = {
                        str(item.value): int(item.start_mark.line) + 1
                        for item, _ in items
                        if isinstance(item, yaml.ScalarNode)
                    }
                    return int(key.start_mark.line) + 1, lines
            return None, {}
    except (yaml.YAMLError, _TooDeepError, RecursionError) as error:
        raise InputError(f"invalid YAML: {error}", path=path) from error
    finally:
        loader.dispose()
    return None, {}


def _reader_problem(error: yaml.reader.ReaderError) -> str:
    character = error.character
    code = f"#x{ord(character) if isinstance(character, str) else character:04x}"
    return f"unacceptable character {code}: {error.reason}"


def _line_at_offset(text: str, offset: int) -> int:
    """The 1-based line of ``offset``, counted in the UTF-8 bytes the C parser reads (the pure
    Python parser counts characters; both agree on ASCII text)."""
    if _BaseLoader is yaml.SafeLoader:
        return text[:offset].count("\n") + 1
    return text.encode("utf-8")[:offset].count(b"\n") + 1


def _too_deep() -> str:
    return f"the document nests more than {MAX_DEPTH} levels deep"


def _deep_yaml_line(text: str) -> int | None:
    """The line where a YAML document first nests deeper than ``MAX_DEPTH`` (parser events
    keep no nesting on the stack, so this is safe at any depth)."""
    loader = KubernetesLoader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            is_node = isinstance(event, yaml.CollectionStartEvent | yaml.ScalarEvent)
            if is_node and depth + 1 > MAX_DEPTH and event.start_mark is not None:
                return int(event.start_mark.line) + 1
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def _document_line(node: yaml.Node) -> int | None:
    """Line of a document's first key (skipping the ``---`` marker and comments)."""
    if isinstance(node, yaml.MappingNode) and node.value:
        return int(node.value[0][0].start_mark.line) + 1
    return int(node.start_mark.line) + 1


def _item_lines(node: yaml.Node) -> list[int | None]:
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        is_items = isinstance(key, yaml.ScalarNode) and key.value == "items"
        if is_items and isinstance(value, yaml.SequenceNode):
            return [int(item.start_mark.line) + 1 for item in value.value]
    return []


def json_documents(text: str, path: str) -> list[_Document]:
    """Return the one JSON document of ``text`` as ``yaml_documents`` returns documents.

    Raises:
        InputError: the text is not valid JSON, holds NaN or Infinity, or nests deeper than
            ``MAX_DEPTH``; the message names ``path`` and the line.
    """
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise InputError(f"invalid JSON: {error.msg}", path=path, line=error.lineno) from error
    except RecursionError as error:
        raise InputError(_too_deep(), path=path, line=_deep_json_line(text)) from error
    except ValueError as error:
        raise InputError(f"invalid JSON: {_plain(error)}", path=path) from error
    if _nesting_depth(value) > MAX_DEPTH:
        raise InputError(_too_deep(), path=path, line=_deep_json_line(text))
    return [(value, 1, [])]


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|\n')


def _deep_json_line(text: str) -> int | None:
    """The line where JSON text first nests deeper than ``MAX_DEPTH`` (None when only a
    number or literal does)."""
    depth, line = 0, 1
    for token in _JSON_TOKENS.finditer(text):
        symbol = token.group()
        if symbol == "\n":
            line += 1
        elif symbol in "]}":
            depth -= 1
        elif depth + 1 > MAX_DEPTH:
            return line
        elif symbol in "[{":
            depth += 1
    return None


def _nesting_depth(value: Any) -> int:
    """How many levels ``value`` nests (a scalar is 1), stopping past ``MAX_DEPTH``."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(item, dict | list):
            stack.extend(
                (child, depth) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a Kubernetes object")


def check_json_value(value: Any, path: str, line: int | None) -> None:
    """Reject YAML values JSON (and so Kubernetes and OPA) cannot carry: non-string keys,
    NaN and infinities, other YAML types, values nesting deeper than ``MAX_DEPTH`` (a
    recursive alias nests forever), and documents whose aliases expand beyond ``MAX_NODES``
    values (a "billion laughs" document). The walk keeps its own stack, so no input can
    exhaust Python's.

    Raises:
        InputError: naming ``path``, ``line`` and the field at fault.
    """
    budget = MAX_NODES
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise InputError(
                f"document expands to more than {MAX_NODES} values (YAML aliases?)",
                path=path,
                line=line,
            )
        if depth >= MAX_DEPTH:
            raise InputError(
                f"{_field(_shorten(where))}: {_too_deep()} (a recursive YAML alias?)",
                path=path,
                line=line,
            )
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    raise InputError(
                        f"mapping key {key!r}{_at(where)} must be a string, got "
                        f"{type(key).__name__}",
                        path=path,
                        line=line,
                    )
                if not _is_unicode(key):
                    raise InputError(
                        f"mapping key {key!r}{_at(where)} holds a lone surrogate "
                        "(\\ud800-\\udfff), which UTF-8 cannot encode",
                        path=path,
                        line=line,
                    )
            children = [(child, f"{where}.{key}" if where else key) for key, child in item.items()]
            stack.extend((child, place, depth + 1) for child, place in reversed(children))
        elif isinstance(item, list):
            stack.extend(
                (child, f"{where}[{position}]", depth + 1)
                for position, child in reversed(list(enumerate(item)))
            )
        elif isinstance(item, str) and not _is_unicode(item):
            raise InputError(
                f"{_field(where)} holds a lone surrogate (\\ud800-\\udfff), which UTF-8 cannot "
                "encode",
                path=path,
                line=line,
            )
        elif isinstance(item, float) and not math.isfinite(item):
            raise InputError(
                f"{_field(where)} is {item}, which JSON cannot represent", path=path, line=line
            )
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise InputError(
                f"{_field(where)} has YAML type {type(item).__name__}, which JSON cannot represent",
                path=path,
                line=line,
            )


def _is_unicode(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (JSON's ``\\ud800`` escapes can break that)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shorten(where: str) -> str:
    return where if len(where) <= 60 else f"{where[:60]}…"


def _at(where: str) -> str:
    return f" in field {where}" if where else ""


def _field(where: str) -> str:
    return f"field {where}" if where else "document"


_IDENTITY_FIELDS = (
    ("apiVersion",),
    ("kind",),
    ("metadata", "name"),
    ("metadata", "generateName"),
    ("metadata", "namespace"),
)


def _not_an_object(value: Any, *, templates: bool) -> str | None:
    """Why ``value`` is not a Kubernetes object to check, or None when it is one.

    With ``templates``, template text makes an object an unrendered template, but only where
    Kubernetes would refuse it (apiVersion, kind, name, namespace): elsewhere it is checked as
    written, so text in an annotation cannot hide an object from the check.
    """
    if not isinstance(value, dict):
        return f"expected a Kubernetes object (a mapping), got {_describe(value)}"
    missing = [name for name in ("apiVersion", "kind") if name not in value]
    if missing:
        return f"object has no {' and no '.join(missing)}"
    for name in ("apiVersion", "kind"):
        if not isinstance(value[name], str):
            return f"{name} must be a string, got {_describe(value[name])}"
    for keys in _IDENTITY_FIELDS if templates else ():
        found: Any = value
        for key in keys:
            found = found.get(key) if isinstance(found, dict) else None
        if isinstance(found, str) and TEMPLATE_MARK in found:
            return f"unrendered template: {'.'.join(keys)} holds template text ({{{{ }}}})"
    return None


def _skip_reason(problem: str) -> str:
    """The notice for a skipped document, from :func:`_not_an_object`'s problem."""
    return problem if problem.startswith("unrendered") else f"not a Kubernetes object: {problem}"


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    shown = repr(value)  # a scalar document may be a whole text (NOTES.txt): show its start
    return f"{type(value).__name__} {shown if len(shown) <= 40 else shown[:39] + '…'}"


def _expand_list(
    value: dict[str, Any],
    path: str,
    line: int | None,
    item_lines: list[int | None],
    *,
    mode: tuple[bool, bool],
) -> Iterator[tuple[dict[str, Any] | str, int | None]]:
    """Yield the object itself, or the items of a List with their own lines; without
    ``strict``, an item that is not an object is yielded as the reason to skip it.

    Raises:
        InputError: ``items`` is not a list, metadata cannot name the object, a policy kind
            has another apiVersion, or (strict) an item is not an object.
    """
    kind: str = value["kind"]
    if not (kind.endswith("List") and "items" in value):
        _check_metadata(value, path, line)
        _check_policy_api_version(value, path, line)
        yield value, line
        return
    items = value["items"]
    if not isinstance(items, list):
        raise InputError(
            f"{kind}.items must be a list, got {_describe(items)}", path=path, line=line
        )
    for position, item in enumerate(items):
        item_line = item_lines[position] if position < len(item_lines) else line
        strict, templates = mode
        problem = _not_an_object(item, templates=templates)
        if problem is not None:
            if strict:
                raise InputError(problem, path=path, line=item_line)
            yield f"{kind} item {position + 1}: {_skip_reason(problem)}", item_line
            continue
        yield from _expand_list(item, path, item_line, [], mode=mode)


def _check_policy_api_version(obj: Mapping[str, Any], path: str, line: int | None) -> None:
    """Refuse a policy kind of another apiVersion: a typo there would otherwise leave the
    policy silently unenforced (fail closed)."""
    kind = obj["kind"]
    if kind in POLICY_KINDS and obj["apiVersion"] != POLICY_API_VERSION:
        raise InputError(
            f"{kind} must have apiVersion {POLICY_API_VERSION}, got {obj['apiVersion']!r}",
            path=path,
            line=line,
        )


def _check_metadata(obj: Mapping[str, Any], path: str, line: int | None) -> None:
    """Reject metadata that would break naming the object (the rest is for the policies)."""
    metadata = obj.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise InputError(
            f"metadata must be a mapping, got {_describe(metadata)}", path=path, line=line
        )
    for field in ("name", "namespace", "generateName"):
        if field in metadata and not isinstance(metadata[field], str):
            raise InputError(
                f"metadata.{field} must be a string, got {_describe(metadata[field])}",
                path=path,
                line=line,
            )
