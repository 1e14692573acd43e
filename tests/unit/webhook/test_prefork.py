"""webhook.prefork: gunicorn's master is patched for gevent before anything imports ssl, then
imports what its workers share and freezes it before each fork. Each probe runs in a process of
its own: patching and gc.freeze would outlive the test in the test process."""

from __future__ import annotations

import subprocess
import sys


def _probe(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout.split()


def test_serve_is_patched_before_anything_imports_ssl() -> None:
    # Refused (no such certificate) after every subcommand module was imported: urllib3 then
    # holds gevent's SSLContext, so it was imported after the patch, not before.
    words = _probe(
        "import sys\n"
        "sys.argv = ['edgepolicy', 'serve', '--tls-cert', 'none.pem', '--tls-key', 'none.pem']\n"
        "from edgepolicy.cli import main\n"
        "code = main()\n"
        "import ssl, urllib3.util.ssl_\n"
        "print(code, 'urllib3' in sys.modules, ssl.SSLContext.__module__,\n"
        "      urllib3.util.ssl_.SSLContext is ssl.SSLContext)\n"
    )
    assert words == ["2", "True", "gevent.ssl", "True"]


def test_main_called_with_arguments_patches_nothing() -> None:
    # A caller in its own process (tests) keeps an unpatched standard library.
    words = _probe(
        "from edgepolicy.cli import main\n"
        "code = main(['serve', '--tls-cert', 'none.pem', '--tls-key', 'none.pem'])\n"
        "import ssl\n"
        "print(code, ssl.SSLContext.__module__)\n"
    )
    assert words == ["2", "ssl"]


def test_the_master_imports_the_signature_libraries_patched() -> None:
    words = _probe(
        "import sys\n"
        "from edgepolicy.webhook.prefork import load_shared\n"
        "assert 'model_signing._signing.sign_sigstore' not in sys.modules\n"
        "load_shared()\n"
        "import gevent.monkey\n"
        "print(gevent.monkey.is_module_patched('ssl'),\n"
        "      'model_signing._signing.sign_sigstore' in sys.modules,\n"
        "      'sigstore.verify' in sys.modules)\n"
    )
    assert words == ["True", "True", "True"]


def test_what_the_master_holds_is_frozen_before_each_fork() -> None:
    words = _probe(
        "import gc\n"
        "from edgepolicy.webhook.prefork import freeze_before_fork\n"
        "gc.unfreeze()\n"
        "freeze_before_fork()\n"
        "first = gc.get_freeze_count()\n"
        "kept = [[] for _ in range(1000)]\n"
        "freeze_before_fork()\n"
        "print(first > 0, gc.get_freeze_count() >= first + 1000)\n"
    )
    assert words == ["True", "True"]
