"""Integration test hooks: a failing mail-lab test reports every lab component's log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab.world import World


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    world = getattr(item, "funcargs", {}).get("lab")
    if report.failed and isinstance(world, World):
        report.sections.append(("mail lab logs", world.logs()))
