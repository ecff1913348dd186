"""The gateway's exception tree.

User errors (bad configuration, bad profile) are reported by the CLI as one clear message, never as
a traceback. Decode errors are data about a message, not failures of the gateway: one place in the
pipeline catches them, counts them by reason and keeps the message in the dead-letter store.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration file or environment is invalid; start-up must stop."""


class ProfileError(GatewayError):
    """A device profile is invalid or conflicts with another one.

    Each problem is one line that already starts with its location, `file:line: field: what`.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DecodeError(GatewayError):
    """A message could not be turned into readings.

    `reason` is a short, stable slug used as a metric label and dead-letter key
    (for example `invalid_json`, `missing_field`, `no_valid_reading`).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class StorageFullError(GatewayError):
    """The spool or dead-letter store could not write (disk full) and the gateway is stopping.

    While the gateway runs, a full disk is a state (gateway/stages/storage.py), not this error:
    the store waits for space. It is raised only when the wait is ended by `close()`."""


class SinkError(GatewayError):
    """A write to the time-series database failed.

    `retryable` says whether the same data may succeed later (5xx, 429, timeouts, connection
    refused); `retry_after_s` carries the server's Retry-After when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.status = status
        super().__init__(message)
