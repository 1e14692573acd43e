"""Name the command-line flag a usage error came from: the library speaks of files and objects,
the command line adds the flag the user gave them with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from edgepolicy.errors import UsageError


@contextmanager
def from_flag(flag: str) -> Iterator[None]:
    """Prefix the message of a :class:`UsageError` raised inside with ``flag``.

    Errors in a file's content (:class:`edgepolicy.errors.InputError`) already name the file
    and line, and pass unchanged.

    Raises:
        UsageError: the error raised inside, its message now starting with ``flag``.
    """
    try:
        yield
    except UsageError as error:
        message = str(error.args[0]) if error.args else type(error).__name__
        error.args = (f"{flag} {message}", *error.args[1:])
        raise
