"""Errors raised by bevlaunch. Library code raises these; only the CLI prints them."""

from __future__ import annotations


class BevlaunchError(Exception):
    """Base class of every error bevlaunch reports to a user (CLI exit code 1 unless noted)."""

    exit_code = 1


class SpecError(BevlaunchError):
    """The job spec is invalid (CLI exit code 2).

    ``problems`` holds one line per problem, each naming the dotted field path, what was given
    and what was expected.
    """

    exit_code = 2

    def __init__(self, problems: list[str] | str, *, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in self.problems))

    @property
    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [prefix + p for p in self.problems]


class ClusterError(BevlaunchError):
    """The cluster or a local runtime refused or failed an operation (CLI exit code 1)."""
