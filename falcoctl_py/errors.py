"""The one exception root of falcoctl-py, its exit codes, and the typed errors of the core.

Every error the core raises on purpose derives from :class:`FalcoctlPyError`. An error carries a
plain message (no markup), optional data (a reference, URL, path, line) and a hint that says how
to fix it. The CLI turns any of them into one line on stderr and the error's exit code; only
``--debug`` shows a traceback. Messages never contain credentials.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes, the same for every command."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    INTERRUPTED = 130


class FalcoctlPyError(Exception):
    """Root of every error falcoctl-py raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The error as a single line: what, where, and how to fix it."""
        text = " ".join(self.message.split())
        if self.hint:
            text = f"{text} (hint: {' '.join(self.hint.split())})"
        return text


class UsageError(FalcoctlPyError):
    """A command was given options or arguments that do not fit together."""

    exit_code = ExitCode.USAGE


class ConfigError(FalcoctlPyError):
    """A configuration file or environment variable is malformed."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class LocatedError(FalcoctlPyError):
    """An error at a place in a file: printed as ``path:line: message``."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path:
            where = path if line is None else f"{path}:{line}"
            if line is not None and column is not None:
                where = f"{where}:{column}"
            where += ": "
        super().__init__(f"{where}{message}", hint=hint)
        self.bare_message = message
        self.path = path
        self.line = line
        self.column = column


class NetworkError(FalcoctlPyError):
    """A remote endpoint (index server, registry, webserver) could not be used."""

    def __init__(
        self, message: str, *, url: str | None = None, status: int | None = None,
        hint: str | None = None, retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.status = status
        self.retry_after = retry_after  # seconds the server asked to wait (429/503), if any


class NotFoundError(FalcoctlPyError):
    """A named thing (index, artifact, tag, rule, file) does not exist."""


class AuthError(NetworkError):
    """A registry or token endpoint refused the credentials (never carries a secret)."""


class IntegrityError(FalcoctlPyError):
    """Content does not match its digest, or an archive is unsafe to extract."""


class VerificationError(FalcoctlPyError):
    """A signature, certificate or transparency-log entry did not verify."""


class DetectorError(FalcoctlPyError):
    """The detector (rules engine, event source, runtime) cannot go on."""


class DependencyError(FalcoctlPyError):
    """Artifact dependencies cannot be satisfied together (names both requirers)."""


class InstallError(FalcoctlPyError):
    """Files could not be staged or moved into a destination directory (disk full, permissions)."""
