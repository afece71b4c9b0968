"""The one exception type for bad user input: the CLI prints it as a single line."""


class ZooError(ValueError):
    """A user-facing error: the message names the bad value and what was expected."""
