"""Test helpers: a throw-away policy Git repository with reproducible commits, and keys.

Author and committer dates are fixed (advancing one minute per commit), so the same sequence of
commits always yields the same commit ids.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

BASE_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z


def finops_policy(
    name: str = "edge-ai-inference-cost-policy",
    namespace: str = "ai-workloads",
    *,
    max_replicas: int = 3,
    max_cpu_cores: Any = 8,
) -> dict[str, Any]:
    """Return a FinOpsPolicy like the seed example, with the limits the tests vary."""
    return {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetWorkloadSelector": {"matchLabels": {"app": "ai-inference-service"}},
            "costLimits": {"maxCPUCores": max_cpu_cores, "maxMemoryGB": 32},
            "autoScale": {"minReplicas": 1, "maxReplicas": max_replicas},
        },
    }


class PolicyRepo:
    """A Git repository in ``path`` whose commits have fixed dates."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.commits = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", f"--initial-branch={branch}")

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run git in the repository with the fixed identity and dates; return stdout."""
        when = f"{BASE_TIME + 60 * self.commits} +0000"
        env = {
            **os.environ,
            **(env or {}),
            "GIT_AUTHOR_NAME": "Policy Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Policy Author",
            "GIT_COMMITTER_EMAIL": "author@example.com",
            "GIT_AUTHOR_DATE": when,
            "GIT_COMMITTER_DATE": when,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=True
        )
        return result.stdout.strip()

    def write(self, relative: str, content: str | dict[str, Any] | list[dict[str, Any]]) -> None:
        """Write a file (a dict is written as YAML, a list as multi-document YAML)."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = yaml.safe_dump(content, sort_keys=False)
        elif isinstance(content, list):
            content = yaml.safe_dump_all(content, sort_keys=False)
        target.write_text(content, encoding="utf-8")

    def commit(
        self, message: str, *, ssh_key: Path | None = None, gpg: tuple[Path, str] | None = None
    ) -> str:
        """Commit everything and return the new commit id.

        ``ssh_key`` (a private key file) signs the commit with SSH; ``gpg`` (a GNUPGHOME and a
        user id) with OpenPGP.
        """
        self.commits += 1
        self.git("add", "-A")
        self.git(*sign_args(ssh_key, gpg), "commit", "--quiet", "--allow-empty", "-m", message,
                 *(["-S"] if ssh_key or gpg else []), env=gpg_env(gpg))  # fmt: skip
        return self.git("rev-parse", "HEAD")

    def revert(self, commit: str) -> str:
        """Revert ``commit`` with a new commit and return its id."""
        self.commits += 1
        self.git("revert", "--no-edit", commit)
        return self.git("rev-parse", "HEAD")


def write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    """Write ``key`` as an unencrypted PKCS#8 PEM file and return its path."""
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def sign_args(ssh_key: Path | None, gpg: tuple[Path, str] | None) -> list[str]:
    """Return the ``git -c`` options that make ``-S`` sign with ``ssh_key`` or ``gpg``."""
    if ssh_key is not None:
        return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={ssh_key}"]
    if gpg is not None:
        return ["-c", "gpg.format=openpgp", "-c", f"user.signingkey={gpg[1]}"]
    return []


def gpg_env(gpg: tuple[Path, str] | None) -> dict[str, str] | None:
    """Return the environment that points GPG at the signer's home."""
    return {"GNUPGHOME": str(gpg[0])} if gpg is not None else None


def ssh_key(directory: Path, name: str) -> Path:
    """Generate an Ed25519 SSH key pair without passphrase; return the private key's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def ssh_fingerprint(key: Path) -> str:
    """Return the ``SHA256:...`` fingerprint of the key pair at ``key``."""
    out = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]


def allowed_signer(principal: str, key: Path, options: str = "") -> str:
    """Return an ``allowed_signers`` line allowing ``key`` for ``principal``."""
    public = Path(f"{key}.pub").read_text(encoding="ascii").strip()
    return f"{principal} {options + ' ' if options else ''}{public}\n"
