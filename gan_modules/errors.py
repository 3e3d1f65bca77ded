"""User-facing errors: each carries one line that says what is wrong and what to do. The CLI prints them without a
stack trace."""


class ConfigError(ValueError):
    """A model or training setting that cannot work (unknown name, bad number, data/model mismatch)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (corrupt, truncated, or from another model class)."""
