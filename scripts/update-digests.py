#!/usr/bin/env python3
"""Pin every image edgepolicy ships by digest, keeping its tag beside it.

The images live in four kinds of places: `image:` lines of deploy/ manifests
(`REPO@sha256:D  # TAG`), the `images:` of deploy/base/kustomization.yaml
(`digest: sha256:D  # TAG`), the image blocks of charts/edgepolicy/values.yaml (`tag:` and
`digest:`; an empty tag is the chart's appVersion) and the Dockerfile's base
(`# python:TAG` above `ARG PYTHON_IMAGE=python@sha256:D`). The tag is the source of truth: to move
an image, change its tag there and run this script. For each place it asks the registry (the OCI
distribution API, anonymous pull token) for the digest of the tag's manifest (the
multi-architecture index when there is one) and writes it.

Usage: scripts/update-digests.py [--check]
  --check  do not contact any registry: list the references not pinned by digest, exit 1 if any.
Standard library only; needs HTTPS access to the registries (docker.io, ghcr.io).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
DIGEST_SLOT = "\0digest\0"
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
REPOSITORY = re.compile(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


class DigestError(Exception):
    """A reference that cannot be parsed or resolved (the message names it)."""


@dataclass(frozen=True)
class ImageRef:
    """An image reference split as registries address it."""

    registry: str  # the API host, e.g. registry-1.docker.io
    repository: str  # e.g. library/python
    tag: str


def parse_reference(name: str, tag: str) -> ImageRef:
    """Split REPOSITORY (as written in a manifest) and TAG the way docker normalizes them.

    Raises DigestError for a malformed repository or tag.
    """
    if not TAG.fullmatch(tag):
        raise DigestError(f"{name}: tag {tag!r} is not a valid tag")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = "docker.io", name
    if registry == "docker.io":
        registry = "registry-1.docker.io"
        if "/" not in repository:
            repository = f"library/{repository}"
    if not REPOSITORY.fullmatch(repository):
        raise DigestError(f"{name}: {repository!r} is not a valid repository name")
    return ImageRef(registry, repository, tag)


def parse_challenge(header: str) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` header.

    Raises DigestError when the header is not a Bearer challenge with a realm.
    """
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise DigestError(f"registry asks for {scheme or 'no'} authentication, expected Bearer")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
    if not fields.get("realm", "").startswith("https://"):
        raise DigestError(f"registry challenge without an https realm: {header!r}")
    return fields


Fetch = Callable[[urllib.request.Request], tuple[int, dict[str, str], bytes]]


def _fetch(request: urllib.request.Request) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()
    except urllib.error.URLError as e:
        raise DigestError(f"{request.full_url}: {e.reason}") from e


def resolve(ref: ImageRef, fetch: Fetch = _fetch) -> str:
    """The digest the registry serves for ``ref``'s tag (HEAD of the manifest).

    Raises DigestError when the registry refuses or answers without a valid digest.
    """
    url = f"https://{ref.registry}/v2/{ref.repository}/manifests/{ref.tag}"
    headers = {"Accept": MANIFEST_TYPES}
    status, answer, _ = fetch(urllib.request.Request(url, headers=headers, method="HEAD"))
    if status == 401:
        challenge = parse_challenge(_header(answer, "WWW-Authenticate"))
        query = {k: v for k, v in challenge.items() if k in ("service", "scope")}
        query.setdefault("scope", f"repository:{ref.repository}:pull")
        token_url = f"{challenge['realm']}?{urllib.parse.urlencode(query)}"
        status, _, body = fetch(urllib.request.Request(token_url))
        if status != 200:
            raise DigestError(f"{token_url}: token request answered {status}")
        token = json.loads(body).get("token") or json.loads(body).get("access_token")
        headers["Authorization"] = f"Bearer {token}"
        status, answer, _ = fetch(urllib.request.Request(url, headers=headers, method="HEAD"))
    if status != 200:
        raise DigestError(f"{url}: answered {status}, expected 200")
    digest = _header(answer, "Docker-Content-Digest")
    if not DIGEST.fullmatch(digest):
        raise DigestError(f"{url}: Docker-Content-Digest {digest!r} is not a sha256 digest")
    return digest


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


@dataclass(frozen=True)
class PinSite:
    """One line that references an image: where, which image and tag, and how to rewrite it."""

    path: Path
    line: int  # 0-based
    name: str
    tag: str
    digest: str | None
    template: str  # the pinned line, with DIGEST_SLOT where the digest goes

    def render(self, digest: str) -> str:
        """The line pinned to ``digest``."""
        return self.template.replace(DIGEST_SLOT, digest)


MANIFEST_IMAGE = re.compile(
    r"(?P<lead>\s*(?:- )?image:\s+)(?P<name>[^\s@]+?)(?::(?P<tag>[\w][\w.-]*))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?(?:\s+#\s*(?P<comment>\S+))?\s*"
)


def manifest_sites(path: Path) -> Iterator[PinSite]:
    """`image:` lines with a tag or a digest (bare kustomize placeholders are left out)."""
    for number, line in enumerate(path.read_text().splitlines()):
        match = MANIFEST_IMAGE.fullmatch(line)
        if not match or not (match["tag"] or match["digest"]):
            continue
        tag = match["comment"] if match["digest"] else match["tag"]
        if not tag:
            raise DigestError(f"{path}:{number + 1}: digest without its tag as a comment")
        template = f"{match['lead']}{match['name']}@{DIGEST_SLOT}  # {tag}"
        yield PinSite(path, number, match["name"], tag, match["digest"], template)


def kustomization_sites(path: Path) -> Iterator[PinSite]:
    """Entries of a kustomization's `images:` (newTag, or a digest with the tag as a comment)."""
    lines = path.read_text().splitlines()
    entry: dict[str, tuple[int, str]] = {}
    in_images = False

    def flush() -> Iterator[PinSite]:
        if "name" not in entry:
            return
        name = (entry.get("newName") or entry["name"])[1]
        if "digest" in entry:
            number, value = entry["digest"]
            digest, _, comment = value.partition("#")
            digest, tag = digest.strip(), comment.strip()
            if not tag:
                raise DigestError(f"{path}:{number + 1}: digest without its tag as a comment")
        elif "newTag" in entry:
            (number, tag), digest = entry["newTag"], None
        else:
            return
        lead = lines[number][: len(lines[number]) - len(lines[number].lstrip())]
        yield PinSite(path, number, name, tag, digest, f"{lead}digest: {DIGEST_SLOT}  # {tag}")

    for number, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" ") and not line.startswith("-"):
            yield from flush()
            entry, in_images = {}, line.startswith("images:")
            continue
        match = re.fullmatch(r"\s*(- )?(name|newName|newTag|digest):\s*(.*?)\s*", line)
        if not in_images or not match:
            continue
        if match[1]:
            yield from flush()
            entry = {}
        entry[match[2]] = (number, match[3])
    yield from flush()


def values_sites(path: Path, app_version: str) -> Iterator[PinSite]:
    """Image blocks of a chart's values.yaml: `repository:`, then `tag:`, then `digest:`."""
    lines = path.read_text().splitlines()
    repository: str | None = None
    tag = ""
    for number, line in enumerate(lines):
        match = re.fullmatch(r"(\s*)(repository|tag|digest):\s*\"?([^\"#\s]*)\"?\s*(#.*)?", line)
        if not match:
            continue
        key, value = match[2], match[3]
        if key == "repository":
            repository, tag = value, ""
        elif key == "tag":
            tag = value
        elif repository is not None:
            template = f"{match[1]}digest: {DIGEST_SLOT}"
            yield PinSite(path, number, repository, tag or app_version, value or None, template)
            repository = None


def dockerfile_sites(path: Path) -> Iterator[PinSite]:
    """`# NAME:TAG` above `ARG X_IMAGE=NAME@sha256:D` (or `=NAME:TAG`)."""
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.fullmatch(r"(ARG \w+=)([^\s@:]+)(?::(\S+)|@(sha256:[0-9a-f]{64}))", line)
        if not match:
            continue
        prefix, name, tag, digest = match.groups()
        if digest:
            above = re.fullmatch(rf"# {re.escape(name)}:(\S+)", lines[number - 1] if number else "")
            if not above:
                raise DigestError(f"{path}:{number + 1}: digest without `# {name}:TAG` above it")
            tag = above[1]
        comment = "" if digest else f"# {name}:{tag}\n"  # a new pin gets its tag above it
        yield PinSite(path, number, name, tag, digest, f"{comment}{prefix}{name}@{DIGEST_SLOT}")


def all_sites(root: Path) -> list[PinSite]:
    """Every image reference the repository ships."""
    app_version = re.search(
        r'^appVersion:\s*"?([^"\s]+)', (root / "charts/edgepolicy/Chart.yaml").read_text(), re.M
    )
    if not app_version:
        raise DigestError("charts/edgepolicy/Chart.yaml: no appVersion")
    sites: list[PinSite] = []
    for path in sorted((root / "deploy").rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            sites.extend(kustomization_sites(path))
        else:
            sites.extend(manifest_sites(path))
    sites.extend(values_sites(root / "charts/edgepolicy/values.yaml", app_version[1]))
    sites.extend(dockerfile_sites(root / "Dockerfile"))
    return sites


def pin(sites: list[PinSite], digests: dict[tuple[str, str], str]) -> list[Path]:
    """Rewrite each site with the digest of its (name, tag); return the files changed.

    Raises DigestError when a lookup is missing.
    """
    changed: dict[Path, list[str]] = {}
    for site in sites:
        digest = digests.get((site.name, site.tag))
        if digest is None:
            raise DigestError(f"{site.path}:{site.line + 1}: no digest for {site.name}:{site.tag}")
        lines = changed.setdefault(site.path, site.path.read_text().splitlines())
        if site.digest != digest:
            lines[site.line] = site.render(digest)
    written = []
    for path, lines in changed.items():
        text = "\n".join(lines) + "\n"
        if text != path.read_text():
            path.write_text(text)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="list unpinned references; no network")
    args = parser.parse_args(argv)
    try:
        sites = all_sites(ROOT)
        if args.check:
            unpinned = [s for s in sites if s.digest is None]
            for site in unpinned:
                print(f"{site.path.relative_to(ROOT)}:{site.line + 1}: {site.name}:{site.tag} "
                      "is not pinned by digest")  # fmt: skip
            return 1 if unpinned else 0
        digests: dict[tuple[str, str], str] = {}
        for site in sites:
            key = (site.name, site.tag)
            if key not in digests:
                digests[key] = resolve(parse_reference(*key))
                print(f"{site.name}:{site.tag} -> {digests[key]}")
        for path in pin(sites, digests):
            print(f"updated {path.relative_to(ROOT)}")
    except DigestError as e:
        print(f"update-digests: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
