"""Error types and the exit codes the `skillopt` CLI documents.

Exit codes:
  0  the command completed (for `optimize`: whether or not the skill improved)
  1  unexpected internal error (a bug: please report it)
  2  invalid config, task file or command line (the message names file:line and the fix)
  3  a model provider failed (after retries) or could not be reached
  4  a budget cap (max_usd / max_calls) was hit before the baseline was measured
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2
EXIT_PROVIDER = 3
EXIT_BUDGET = 4


class SkillOptError(Exception):
    exit_code = EXIT_INTERNAL


class ConfigError(SkillOptError):
    """Bad user input. Always says where (file:line) and what to write instead."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, file: str | None = None, line: int | None = None, fix: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = f"{where}{self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigErrors(ConfigError):
    """Several ConfigErrors found in one pass (`skillopt validate` reports them all). Its own file, line,
    message and fix are the first error's, so code that handles one ConfigError keeps working."""

    def __init__(self, errors: list[ConfigError]):
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, first.file, first.line, first.fix)

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)

    @staticmethod
    def of(exc: ConfigError) -> list[ConfigError]:
        """The individual errors inside `exc` (itself, unless it is a ConfigErrors)."""
        return list(exc.errors) if isinstance(exc, ConfigErrors) else [exc]


class ProviderError(SkillOptError):
    """A model provider failed permanently (auth, bad request) or kept failing after retries."""

    exit_code = EXIT_PROVIDER


class TransientError(Exception):
    """A call that may succeed if retried (429, 5xx, timeout, connection reset).

    `retry_after` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExceeded(SkillOptError):
    """A hard cap (max_usd or max_calls) would be crossed by the next call."""

    exit_code = EXIT_BUDGET


class EmptyAnswer(TransientError):
    """A model answered 200 with no text (or only whitespace; also a `finish_reason: length` reply with an empty
    body). Retried like any transient error; after the retries the call counts as failed and is never cached.
    `usage` is what the empty reply still cost."""

    def __init__(self, message: str, usage: object | None = None):
        super().__init__(message)
        self.usage = usage
