"""The event loop ``srsfwd serve`` runs on: uvloop when installed, asyncio's own else."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

from srsfwd.errors import ConfigError
from srsfwd.servers.eventloop import loop_factory, run

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def loop_class_name() -> None:
    print(type(asyncio.get_running_loop()).__module__)


def test_asyncio_is_asyncios_own_loop(capsys: pytest.CaptureFixture[str]) -> None:
    assert loop_factory("asyncio")[0] == "asyncio"
    run(loop_class_name(), "asyncio")
    assert capsys.readouterr().out.startswith("asyncio")


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed (the fast extra)")
def test_auto_takes_uvloop_when_it_is_installed(capsys: pytest.CaptureFixture[str]) -> None:
    assert loop_factory("auto")[0] == "uvloop"
    run(loop_class_name(), "auto")
    assert capsys.readouterr().out.startswith("uvloop")


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert loop_factory("auto")[0] == "asyncio"


def test_asking_for_uvloop_without_it_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ConfigError, match="srsfwd\\[fast\\]"):
        run(loop_class_name(), "uvloop")
