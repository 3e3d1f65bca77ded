"""User-facing errors. Every one carries one line that says what is wrong and what to do; the CLI prints it after
``gan-modules: error:`` without a stack trace and exits with status 2.

``UserError`` is the one base that both packages raise (``ConfigError`` and ``CheckpointError`` here,
``datamodules.DataError`` for data). The CLI finds it in the exception's cause/context chain, also when a library
(jsonargparse) re-raises it inside a multi-line message of its own. This module imports nothing, so the data package
can use it without importing the training loop.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem the user can fix, described in one line (what is wrong and what to do)."""

    def __init__(self, message: object = "", *args: object) -> None:
        if isinstance(message, str):
            message = _one_line(message)
        super().__init__(message, *args)


def _one_line(message: str) -> str:
    # An error raised in a DataLoader worker is rebuilt in the main process from torch's text "Caught DataError in
    # DataLoader worker process 0.\nOriginal Traceback ...\n...DataError: <message>": keep the user's line.
    if message.startswith("Caught ") and "\nOriginal Traceback" in message:
        last = message.rstrip().splitlines()[-1]
        if "Error: " in last:
            message = last.split("Error: ", 1)[1]
    # one line, even when it quotes a multi-line message of another library
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


class ConfigError(UserError):
    """A model or training setting that cannot work (unknown name, bad number, data/model mismatch)."""


class CheckpointError(UserError):
    """A checkpoint that cannot be loaded (corrupt, truncated, or from another model class)."""


def find_user_error(err: BaseException | None) -> UserError | None:
    """The ``UserError`` behind ``err``: itself or the first one in its cause/context chain (None if there is none)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


__all__ = ["CheckpointError", "ConfigError", "UserError", "find_user_error"]
