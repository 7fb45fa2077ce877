"""Errors the project raises on purpose. Each carries a message an operator can act on."""


class KeystoneChecksError(Exception):
    """Base class: anything deriving from it is printed as a message, never as a traceback."""


class CheckFileError(KeystoneChecksError):
    """A check file is broken. ``location`` is ``path:line`` (line when known)."""

    def __init__(self, location: str, message: str):
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


class CatalogError(KeystoneChecksError):
    """One or more check files are broken; ``problems`` holds every CheckFileError found."""

    def __init__(self, problems: list[CheckFileError]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class HostDataError(KeystoneChecksError):
    """Host data (inventory) missing or of the wrong type for what a check needs."""

    def __init__(self, host: str, key: str, message: str):
        self.host = host
        self.key = key
        super().__init__(f"host {host}: host data '{key}': {message}")


class UnparseableOutput(KeystoneChecksError):
    """A fact could not make sense of its command's output: the check becomes ``error``."""


class ProbeFailed(KeystoneChecksError):
    """A fact's command failed (non-zero exit, missing command, timeout): the check becomes ``error``."""
