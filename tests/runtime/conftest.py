"""Fixtures and markers of the runtime tests (helpers live in ``runtime_helpers``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from runtime_helpers import Finished, finish, start


@pytest.fixture
def run_bevdepth() -> Callable[..., Finished]:
    """Run one single-process ``python -m bevdepth`` command to the end."""

    def run(*args: str, env: dict[str, str] | None = None) -> Finished:
        return finish(start(list(args), env))

    return run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "overfit: trains for minutes to a non-zero mAP; run only with -m overfit"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Overfit tests run only when the marker expression asks for them."""
    if "overfit" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long overfit run; select it with -m overfit")
    for item in items:
        if "overfit" in item.keywords:
            item.add_marker(skip)
