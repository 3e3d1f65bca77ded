"""User-facing data errors: each carries one line that says what is wrong and what to do. The CLI prints them without
a stack trace."""


class DataError(ValueError):
    """A data problem the user can fix: missing or corrupt files, an empty folder, an impossible size or split."""

    def __init__(self, message: str = "", *args: object) -> None:
        # A DataError raised in a DataLoader worker is rebuilt in the main process from torch's text "Caught DataError
        # in DataLoader worker process 0.\nOriginal Traceback ...\n...DataError: <message>": keep the one line.
        if isinstance(message, str) and message.startswith("Caught DataError") and "\nOriginal Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            if "DataError: " in last:
                message = last.split("DataError: ", 1)[1]
        if isinstance(message, str):  # one line, even when it quotes a multi-line message of another library
            message = " ".join(line.strip() for line in message.splitlines() if line.strip())
        super().__init__(message, *args)
        _last[:] = [self]  # the CLI finds it again when jsonargparse wraps it in a multi-line error


_last: list[DataError] = []


def last_data_error() -> DataError | None:
    return _last[0] if _last else None
