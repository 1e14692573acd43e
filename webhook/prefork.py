"""What gunicorn's master loads before it forks the webhook workers.

Every worker verifies model signatures with model-signing and sigstore, some 35 MB of modules
per process when each worker imports its own copy. Imported once in the master and moved out
of the garbage collector's generations (``gc.freeze``), the workers share those pages
copy-on-write: a collection in a worker then skips the shared objects instead of writing to
their headers, which would copy the pages back into each worker.
"""

from __future__ import annotations

import gc

from edgepolicy.model_context import preload_verification


def load_shared() -> None:
    """Import the signature libraries in this process and freeze what exists so far.

    Call it in gunicorn's master, before it forks. Never raises: without the ``models`` extra
    nothing is imported and every verification fails closed with the reason.
    """
    preload_verification()
    gc.collect()
    gc.freeze()
