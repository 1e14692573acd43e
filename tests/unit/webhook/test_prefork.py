"""edgepolicy.webhook.prefork: what gunicorn's master imports and freezes before the fork."""

from __future__ import annotations

import subprocess
import sys


def test_the_master_holds_the_signature_libraries_frozen_for_its_workers() -> None:
    # In a process of its own: gc.freeze would outlive this test in the test process.
    probe = (
        "import gc, sys\n"
        "from edgepolicy.webhook.prefork import load_shared\n"
        "assert 'model_signing._signing.sign_sigstore' not in sys.modules\n"
        "load_shared()\n"
        "print('model_signing._signing.sign_sigstore' in sys.modules, gc.get_freeze_count())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    imported, frozen = result.stdout.split()
    assert imported == "True"
    assert int(frozen) > 0  # what exists now is out of the collector's generations
