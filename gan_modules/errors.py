"""User-facing errors: each carries one line that says what is wrong and what to do. The CLI prints them without a
stack trace.

jsonargparse re-raises any exception from a class's ``__init__`` inside a multi-line "Does not validate against any
of the Union subtypes" message, so every user error remembers itself (``last_user_error``) and the CLI recognises it
inside whatever wraps it.
"""

from __future__ import annotations

_last: list[BaseException] = []


def remember(err: BaseException) -> None:
    _last[:] = [err]


def last_user_error() -> BaseException | None:
    return _last[0] if _last else None


class ConfigError(ValueError):
    """A model or training setting that cannot work (unknown name, bad number, data/model mismatch)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        remember(self)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (corrupt, truncated, or from another model class)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        remember(self)
