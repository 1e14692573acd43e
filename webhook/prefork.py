"""What gunicorn's master does before it forks the webhook's evented workers.

The workers are gevent workers, so the standard library (``socket``, ``ssl``, ``threading``,
``time``, ``select``, ``subprocess``...) must be patched before the libraries that use it are
imported: a module that took ``ssl.SSLContext`` or ``threading.Lock`` at import keeps the
blocking original, and one blocking call holds every connection of its worker. ``edgepolicy
serve`` therefore patches its own process first (:func:`patch_standard_library`, called by the
command line's entry before anything imports ``ssl``): gunicorn's master runs patched, and its
workers inherit the patch with the rest of its memory.

The master then imports what every worker needs and no request may wait for: model-signing and
sigstore, some 35 MB of modules and 1.5 s of imports (:func:`load_shared`). The workers share
those pages copy-on-write instead of each importing its own copy. Right before each fork the
master moves what it holds out of the garbage collector's generations
(:func:`freeze_before_fork`, gunicorn's ``pre_fork`` hook): a collection in a worker then
skips the shared objects instead of writing to their headers, which would copy their pages back
into each worker.

In a patched process threads are greenlets, and a greenlet survives fork: a background loop the
master started (the local OPA's watchdog) wakes up in every worker too unless it checks which
process it runs in (:class:`edgepolicy.webhook.opa_supervisor.OpaSupervisor` does).
"""

from __future__ import annotations

import gc


def patch_standard_library() -> None:
    """Patch the standard library for gevent in this process; later calls change nothing.

    Call it before anything imports ``ssl``. Called later (a server started from a process that
    imported ``ssl`` already), the modules imported before keep what they took from the
    unpatched library, and gevent warns about them.
    """
    from gevent import monkey  # type: ignore[import-untyped]

    monkey.patch_all()


def load_shared() -> None:
    """Import, in this process, what the workers share: the model-signature libraries.

    Patches the standard library first if that is not done yet (they must never be imported
    unpatched). Never raises: without the ``models`` extra nothing is imported and every
    verification fails closed with the reason.
    """
    patch_standard_library()
    # Imported here: the command line imports this module before the patch, when nothing may
    # import ssl yet.
    from edgepolicy.model_context import preload_verification

    preload_verification()


def freeze_before_fork() -> None:
    """Collect the garbage and freeze what is left (``gc.freeze``), so the worker about to be
    forked shares it untouched (gunicorn's ``pre_fork`` hook calls it). After the first fork
    only what the master allocated since is collected, which costs little."""
    gc.collect()
    gc.freeze()
